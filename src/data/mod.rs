//! Datasets, class-disjoint splits and the class-balanced batch sampler.

pub mod fashion_mnist;
pub mod images;
pub mod sampler;
pub mod synthetic;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use fashion_mnist::{FASHION_MNIST_DEFAULT_ROOT, FashionMnistConfig};
pub use images::{ImageSet, Splits, Validation};
pub use sampler::ClassBalancedSampler;
pub use synthetic::SyntheticConfig;

/// Dataset names accepted on the `dataset` axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    FashionMnist,
    /// Seeded generated images (tests, quick checks).
    Synthetic,
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Synthetic => "synthetic",
        })
    }
}

/// A dataset with its split parameters (the part of a run's configuration that says which
/// images it trains, selects and tests on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum DatasetConfig {
    FashionMnist(FashionMnistConfig),
    Synthetic(SyntheticConfig),
}

impl DatasetConfig {
    /// Number of training classes (the classes a batch can draw from).
    pub fn train_class_count(&self) -> usize {
        match self {
            DatasetConfig::FashionMnist(c) => c
                .validation
                .train_classes(c.train_classes.len(), c.val_fraction),
            DatasetConfig::Synthetic(c) => c.train_class_count(),
        }
    }

    /// False for datasets generated in memory (no folder to read).
    pub fn needs_root(&self) -> bool {
        !matches!(self, DatasetConfig::Synthetic(_))
    }

    /// Loads the train / validation / test splits from `root`.
    pub fn load(&self, root: &Path) -> anyhow::Result<Splits> {
        match self {
            DatasetConfig::FashionMnist(c) => fashion_mnist::load_splits(c, root),
            DatasetConfig::Synthetic(c) => Ok(c.splits()),
        }
    }
}
