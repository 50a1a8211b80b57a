//! The TOML schema of an experiment matrix, as written by the user.
//!
//! Every table denies unknown keys; values the expansion checks carry their source span so that
//! errors can name line and column.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use toml::Spanned;

use crate::data::{DatasetName, SyntheticConfig, Validation};
use crate::loss::{
    BinomialDevianceConfig, ContrastiveConfig, LossConfig, LossName, MarginConfig,
    MultiSimilarityConfig, NormalizedSoftmaxConfig, ProxyAnchorConfig, TripletConfig,
};
use crate::model::{BackboneKind, HeadKind};

/// A whole matrix file (`experiments/*.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    /// Name of the matrix; the file stem when absent. Names the report files.
    pub name: Option<Spanned<String>>,
    /// Free text shown by `plan`.
    pub description: Option<String>,
    /// The axes whose cartesian product are the cells.
    pub axes: Spanned<Axes>,
    /// Training settings for every cell (over the built-in defaults).
    #[serde(default)]
    pub defaults: Settings,
    /// Per-backbone options, keyed by backbone name.
    #[serde(default)]
    pub backbones: BackboneTables,
    /// Per-dataset parameters, keyed by dataset name.
    #[serde(default)]
    pub datasets: DatasetTables,
    /// Per-loss parameters, keyed by loss name.
    #[serde(default)]
    pub losses: LossTables,
    /// Rules removing cells: a cell is excluded when it matches every key of one rule.
    #[serde(default)]
    pub exclude: Vec<Spanned<ExcludeRule>>,
}

/// An axis: a non-empty list of distinct values, each with its span.
pub type Axis<T> = Spanned<Vec<Spanned<T>>>;

/// The matrix axes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    pub dataset: Axis<DatasetName>,
    pub backbone: Axis<BackboneKind>,
    pub head: Axis<HeadKind>,
    pub loss: Axis<LossName>,
    pub groups: Axis<usize>,
    pub seed: Axis<u64>,
    /// Total embedding size D; `defaults.embedding_size` when absent.
    pub embedding_size: Option<Axis<usize>>,
}

/// Names of the axes, in expansion order, and `fold` (a dataset's `folds = k` expands into one
/// cell per fold): the keys `--only` accepts.
pub const AXIS_NAMES: [&str; 8] = [
    "dataset",
    "backbone",
    "head",
    "loss",
    "embedding_size",
    "groups",
    "seed",
    "fold",
];

/// Training and model settings; every field optional so tables can override each other.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub epochs: Option<Spanned<usize>>,
    pub batch_size: Option<Spanned<usize>>,
    pub samples_per_class: Option<Spanned<usize>>,
    pub lr: Option<Spanned<f64>>,
    pub weight_decay: Option<Spanned<f64>>,
    pub head_lr: Option<Spanned<f64>>,
    pub head_weight_decay: Option<Spanned<f64>>,
    pub query_lr: Option<Spanned<f64>>,
    pub query_weight_decay: Option<Spanned<f64>>,
    pub lr_milestones: Option<Spanned<Vec<usize>>>,
    pub lr_gamma: Option<Spanned<f64>>,
    pub lambda_div: Option<Spanned<f64>>,
    pub reduction: Option<Spanned<usize>>,
    pub embedding_size: Option<Spanned<usize>>,
    pub recall_k: Option<Spanned<Vec<usize>>>,
    pub selection_metric: Option<Spanned<String>>,
}

impl Settings {
    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn overlaid(&self, over: &Settings) -> Settings {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        Settings {
            epochs: pick(&self.epochs, &over.epochs),
            batch_size: pick(&self.batch_size, &over.batch_size),
            samples_per_class: pick(&self.samples_per_class, &over.samples_per_class),
            lr: pick(&self.lr, &over.lr),
            weight_decay: pick(&self.weight_decay, &over.weight_decay),
            head_lr: pick(&self.head_lr, &over.head_lr),
            head_weight_decay: pick(&self.head_weight_decay, &over.head_weight_decay),
            query_lr: pick(&self.query_lr, &over.query_lr),
            query_weight_decay: pick(&self.query_weight_decay, &over.query_weight_decay),
            lr_milestones: pick(&self.lr_milestones, &over.lr_milestones),
            lr_gamma: pick(&self.lr_gamma, &over.lr_gamma),
            lambda_div: pick(&self.lambda_div, &over.lambda_div),
            reduction: pick(&self.reduction, &over.reduction),
            embedding_size: pick(&self.embedding_size, &over.embedding_size),
            recall_k: pick(&self.recall_k, &over.recall_k),
            selection_metric: pick(&self.selection_metric, &over.selection_metric),
        }
    }
}

/// `[backbones.<name>]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackboneTables {
    pub convnet_small: Option<BackboneTable>,
    pub resnet18: Option<BackboneTable>,
    pub resnet50: Option<BackboneTable>,
    pub googlenet: Option<BackboneTable>,
    pub bninception: Option<BackboneTable>,
}

impl BackboneTables {
    /// The table of backbone `kind`, if the matrix has one.
    pub fn get(&self, kind: BackboneKind) -> Option<&BackboneTable> {
        match kind {
            BackboneKind::ConvnetSmall => self.convnet_small.as_ref(),
            BackboneKind::Resnet18 => self.resnet18.as_ref(),
            BackboneKind::Resnet50 => self.resnet50.as_ref(),
            BackboneKind::Googlenet => self.googlenet.as_ref(),
            BackboneKind::Bninception => self.bninception.as_ref(),
        }
    }
}

/// `[backbones.<name>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneTable {
    /// A PyTorch state dict (e.g. torchvision's resnet50-11ad3fa6.pth) to start from.
    pub weights: Option<Spanned<String>>,
    /// Keep BatchNorm layers in eval mode with fixed parameters.
    pub freeze_batchnorm: Option<bool>,
}

/// `[datasets.<name>]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetTables {
    #[serde(rename = "fashion-mnist")]
    pub fashion_mnist: Option<FashionMnistTable>,
    pub cub: Option<PhotoTable>,
    pub cars: Option<PhotoTable>,
    pub sop: Option<PhotoTable>,
    pub inshop: Option<PhotoTable>,
    /// `[datasets.synthetic]`: the generator's parameters.
    pub synthetic: Option<SyntheticConfig>,
}

impl DatasetTables {
    /// The table of photo dataset `name`.
    pub fn photo(&self, name: DatasetName) -> Option<&PhotoTable> {
        match name {
            DatasetName::Cub => self.cub.as_ref(),
            DatasetName::Cars => self.cars.as_ref(),
            DatasetName::Sop => self.sop.as_ref(),
            DatasetName::InShop => self.inshop.as_ref(),
            _ => None,
        }
    }
}

/// `[datasets.cub]`, `[datasets.cars]`, `[datasets.sop]`, `[datasets.inshop]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoTable {
    /// The dataset's folder in its published layout; not part of the cell hash.
    pub root: Option<Spanned<String>>,
    pub train_per_class: Option<usize>,
    pub val_fraction: Option<Spanned<f64>>,
    pub split_seed: Option<u64>,
    /// `classes` (default: class-disjoint) or `images`.
    pub validation: Option<Validation>,
    /// k of a k-fold class-disjoint validation: one cell per fold.
    pub folds: Option<Spanned<usize>>,
    /// Training crop side (default 224; 227 for GoogLeNet).
    pub crop: Option<Spanned<usize>>,
    /// Test crop side (default 224).
    pub test_crop: Option<Spanned<usize>>,
    /// Shorter side before the test crop (default 256).
    pub resize: Option<Spanned<usize>>,
    /// RandomResizedCrop area range (default [0.08, 1.0]).
    pub scale: Option<Spanned<[f64; 2]>>,
    /// RandomResizedCrop aspect-ratio range (default [0.75, 1.333]).
    pub ratio: Option<Spanned<[f64; 2]>>,
    /// Horizontal flips (default true).
    pub flip: Option<bool>,
    /// Settings for this dataset's cells, over `[defaults]`.
    #[serde(default)]
    pub train: Settings,
}

/// `[datasets.fashion-mnist]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FashionMnistTable {
    /// Folder with the four IDX gzip files; not part of the cell hash (where, not what).
    pub root: Option<Spanned<String>>,
    pub train_classes: Option<Spanned<Vec<u8>>>,
    pub test_classes: Option<Spanned<Vec<u8>>>,
    pub train_per_class: Option<usize>,
    pub test_per_class: Option<usize>,
    pub val_fraction: Option<Spanned<f64>>,
    pub split_seed: Option<u64>,
    /// `images` (default) or `classes` (class-disjoint validation).
    pub validation: Option<Validation>,
    /// k of a k-fold class-disjoint validation: one cell per fold.
    pub folds: Option<Spanned<usize>>,
    /// Settings for this dataset's cells, over `[defaults]`.
    #[serde(default)]
    pub train: Settings,
}

/// `[losses.<name>]` tables: each loss's hyper-parameters over its defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LossTables {
    pub margin: Option<MarginConfig>,
    pub multi_similarity: Option<MultiSimilarityConfig>,
    pub proxy_anchor: Option<ProxyAnchorConfig>,
    pub contrastive: Option<ContrastiveConfig>,
    pub triplet: Option<TripletConfig>,
    pub binomial_deviance: Option<BinomialDevianceConfig>,
    pub normalized_softmax: Option<NormalizedSoftmaxConfig>,
}

impl LossTables {
    /// The effective configuration of loss `name`.
    pub fn resolve(&self, name: LossName) -> LossConfig {
        fn or_default<T: Clone + Default>(table: &Option<T>) -> T {
            table.clone().unwrap_or_default()
        }
        match name {
            LossName::Margin => LossConfig::Margin(or_default(&self.margin)),
            LossName::MultiSimilarity => {
                LossConfig::MultiSimilarity(or_default(&self.multi_similarity))
            }
            LossName::ProxyAnchor => LossConfig::ProxyAnchor(or_default(&self.proxy_anchor)),
            LossName::Contrastive => LossConfig::Contrastive(or_default(&self.contrastive)),
            LossName::Triplet => LossConfig::Triplet(or_default(&self.triplet)),
            LossName::BinomialDeviance => {
                LossConfig::BinomialDeviance(or_default(&self.binomial_deviance))
            }
            LossName::NormalizedSoftmax => {
                LossConfig::NormalizedSoftmax(or_default(&self.normalized_softmax))
            }
        }
    }
}

/// One `[[exclude]]` rule; each key takes one value or a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeRule {
    pub dataset: Option<OneOrMany<DatasetName>>,
    pub backbone: Option<OneOrMany<BackboneKind>>,
    pub head: Option<OneOrMany<HeadKind>>,
    pub loss: Option<OneOrMany<LossName>>,
    pub embedding_size: Option<OneOrMany<usize>>,
    pub groups: Option<OneOrMany<usize>>,
    pub seed: Option<OneOrMany<u64>>,
}

/// A value or a list of values (`head = "none"` or `groups = [2, 4]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T: PartialEq> OneOrMany<T> {
    /// True when `value` is one of the listed values.
    pub fn contains(&self, value: &T) -> bool {
        self.0.contains(value)
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        let items = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        items
            .into_iter()
            .map(|item| T::deserialize(item).map_err(D::Error::custom))
            .collect::<Result<Vec<T>, D::Error>>()
            .map(OneOrMany)
    }
}
