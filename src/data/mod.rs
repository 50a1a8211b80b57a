//! Datasets, class-disjoint splits and the class-balanced batch sampler.

pub mod cars;
pub mod cub;
pub mod fashion_mnist;
pub mod image_folder;
pub mod images;
pub mod inshop;
pub mod jpeg;
pub mod loader;
pub mod own;
pub mod photos;
pub mod pipeline;
pub mod sampler;
pub mod sop;
pub mod synthetic;
pub mod table;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use fashion_mnist::{FASHION_MNIST_DEFAULT_ROOT, FashionMnistConfig};
pub use images::{ClassFold, ImageSet, Images, Splits, Validation};
pub use jpeg::JpegDecoder;
pub use own::{OwnConfig, OwnContent, OwnKind, OwnPlace};
pub use photos::PhotoConfig;
pub use pipeline::{Crop, ImageFile, Normalization, Transform, View};
pub use sampler::ClassBalancedSampler;
pub use synthetic::SyntheticConfig;

/// Dataset names accepted on the `dataset` axis: the built-in ones and the names of a
/// matrix's own datasets (`[datasets.<name>] kind = ...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    FashionMnist,
    /// CUB-200-2011.
    Cub,
    /// Cars196.
    Cars,
    /// Stanford Online Products.
    Sop,
    /// In-Shop Clothes Retrieval.
    #[serde(rename = "inshop")]
    InShop,
    /// Seeded generated images (tests, quick checks).
    Synthetic,
    /// A researcher's own dataset, named by its table in the matrix.
    #[serde(untagged)]
    Own(String),
}

impl DatasetName {
    /// The built-in datasets, as a matrix writes them.
    pub const BUILT_IN: [&str; 6] = ["fashion-mnist", "cub", "cars", "sop", "inshop", "synthetic"];

    /// Where the dataset is looked for when its table names no root (none for an own
    /// dataset, whose table must).
    pub fn default_root(&self) -> Option<&'static str> {
        Some(match self {
            DatasetName::FashionMnist => FASHION_MNIST_DEFAULT_ROOT,
            DatasetName::Cub => "data/CUB_200_2011",
            DatasetName::Cars => "data/cars196",
            DatasetName::Sop => "data/Stanford_Online_Products",
            DatasetName::InShop => "data/inshop",
            DatasetName::Synthetic => "",
            DatasetName::Own(_) => return None,
        })
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cub => "cub",
            DatasetName::Cars => "cars",
            DatasetName::Sop => "sop",
            DatasetName::InShop => "inshop",
            DatasetName::Synthetic => "synthetic",
            DatasetName::Own(name) => name,
        })
    }
}

/// A dataset with its split parameters (the part of a run's configuration that says which
/// images it trains, selects and tests on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum DatasetConfig {
    FashionMnist(FashionMnistConfig),
    Cub(PhotoConfig),
    Cars(PhotoConfig),
    Sop(PhotoConfig),
    #[serde(rename = "inshop")]
    InShop(PhotoConfig),
    Synthetic(SyntheticConfig),
    /// An own dataset listed by a table.
    Csv(OwnConfig),
    /// An own dataset in class folders.
    ImageFolder(OwnConfig),
}

impl DatasetConfig {
    /// Number of training classes (the classes a batch can draw from), where it is known
    /// without reading the dataset.
    pub fn train_class_count(&self) -> Option<usize> {
        match self {
            DatasetConfig::FashionMnist(c) => Some(c.validation.train_classes(
                c.train_classes.len(),
                c.val_fraction,
                c.fold,
            )),
            DatasetConfig::Synthetic(c) => Some(c.train_class_count()),
            _ => None,
        }
    }

    /// How its validation split is carved (the synthetic set's too).
    pub fn validation(&self) -> Validation {
        match self {
            DatasetConfig::FashionMnist(c) => c.validation,
            DatasetConfig::Synthetic(c) => c.validation,
            photo => photo.photo().expect("a photo set").validation,
        }
    }

    /// The photo dataset's configuration, if this is one.
    pub fn photo(&self) -> Option<&PhotoConfig> {
        match self {
            DatasetConfig::Cub(c)
            | DatasetConfig::Cars(c)
            | DatasetConfig::Sop(c)
            | DatasetConfig::InShop(c) => Some(c),
            DatasetConfig::Csv(c) | DatasetConfig::ImageFolder(c) => Some(&c.photo),
            DatasetConfig::FashionMnist(_) | DatasetConfig::Synthetic(_) => None,
        }
    }

    /// The photo dataset's configuration, if this is one.
    pub fn photo_mut(&mut self) -> Option<&mut PhotoConfig> {
        match self {
            DatasetConfig::Cub(c)
            | DatasetConfig::Cars(c)
            | DatasetConfig::Sop(c)
            | DatasetConfig::InShop(c) => Some(c),
            DatasetConfig::Csv(c) | DatasetConfig::ImageFolder(c) => Some(&mut c.photo),
            DatasetConfig::FashionMnist(_) | DatasetConfig::Synthetic(_) => None,
        }
    }

    /// The configuration with no validation split (the test-selected protocol): every
    /// training image trains; the fold and validation fraction, which then say nothing, are
    /// reset so that they do not split one training into several cells.
    pub fn without_validation(&self) -> DatasetConfig {
        let mut config = self.clone();
        match &mut config {
            DatasetConfig::FashionMnist(c) => {
                (c.validation, c.fold) = (Validation::None, None);
                c.val_fraction = FashionMnistConfig::default().val_fraction;
            }
            DatasetConfig::Synthetic(c) => {
                c.validation = Validation::None;
                c.val_fraction = SyntheticConfig::default().val_fraction;
            }
            photo => {
                let c = photo.photo_mut().expect("a photo set");
                (c.validation, c.fold) = (Validation::None, None);
                c.val_fraction = PhotoConfig::default().val_fraction;
            }
        }
        config
    }

    /// Makes class-disjoint validation use `fold` of a k-fold split (datasets that have
    /// folds; the synthetic set has none).
    pub fn set_fold(&mut self, fold: ClassFold) {
        match self {
            DatasetConfig::FashionMnist(c) => c.fold = Some(fold),
            DatasetConfig::Synthetic(_) => {}
            photo => photo.photo_mut().expect("a photo set").fold = Some(fold),
        }
    }

    /// False for datasets generated in memory (no folder to read).
    pub fn needs_root(&self) -> bool {
        !matches!(self, DatasetConfig::Synthetic(_))
    }

    /// Loads the train / validation / test splits from `root` (and an own dataset's `table`).
    pub fn load(&self, root: &Path, table: Option<&Path>) -> anyhow::Result<Splits> {
        let own = |kind| OwnPlace { kind, root, table };
        match self {
            DatasetConfig::FashionMnist(c) => fashion_mnist::load_splits(c, root),
            DatasetConfig::Cub(c) => Ok(photos::splits(&cub::list(root)?, c)),
            DatasetConfig::Cars(c) => Ok(photos::splits(&cars::list(root)?, c)),
            DatasetConfig::Sop(c) => Ok(photos::splits(&sop::list(root)?, c)),
            DatasetConfig::InShop(c) => Ok(photos::splits(&inshop::list(root)?, c)),
            DatasetConfig::Synthetic(c) => Ok(c.splits()),
            DatasetConfig::Csv(c) => Ok(own(OwnKind::Csv).load(c)?),
            DatasetConfig::ImageFolder(c) => Ok(own(OwnKind::ImageFolder).load(c)?),
        }
    }
}
