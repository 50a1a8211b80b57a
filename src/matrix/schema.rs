//! The TOML schema of an experiment matrix, as written by the user.
//!
//! Every table denies unknown keys; values the expansion checks carry their source span so that
//! errors can name line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use toml::Spanned;

use super::axis::Axis;
use super::filter::Selection;
use super::layer::Layer;
use crate::data::DatasetName;
use crate::loss::LossName;
use crate::model::{BackboneKind, HeadKind};
use crate::train::Protocol;

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
    /// Training and model settings for every cell (over the built-in defaults): keys of
    /// [`TrainConfig`](crate::train::TrainConfig) and [`ModelSettings`](crate::train::config::ModelSettings).
    #[serde(default)]
    pub defaults: Layer,
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
pub type AxisList<T> = Spanned<Vec<Spanned<T>>>;

/// The matrix axes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    pub dataset: AxisList<DatasetName>,
    pub backbone: AxisList<BackboneKind>,
    pub head: AxisList<HeadKind>,
    pub loss: AxisList<LossName>,
    pub groups: AxisList<usize>,
    pub seed: AxisList<u64>,
    /// Total embedding size D; `defaults.embedding_size` when absent.
    pub embedding_size: Option<AxisList<usize>>,
    /// Evaluation protocols; `held-out` alone when absent.
    pub protocol: Option<AxisList<Protocol>>,
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
    /// Keep BatchNorm's running statistics fixed (eval mode); gamma and beta still train, as
    /// in the authors' code.
    pub freeze_batchnorm: Option<bool>,
    /// With `freeze_batchnorm`: fix gamma and beta too.
    pub freeze_batchnorm_affine: Option<bool>,
    /// GoogLeNet only: torchvision's input transform (the authors leave it out).
    pub transform_input: Option<bool>,
}

/// `[datasets.<name>]` tables, keyed by dataset name: a built-in one's or an own dataset's
/// (`kind = "csv" | "image-folder"`, its name chosen by the matrix). Each holds its dataset's
/// parameters (the fields of its configuration type: [`FashionMnistConfig`](crate::data::FashionMnistConfig),
/// [`SyntheticConfig`](crate::data::SyntheticConfig), or [`PhotoConfig`](crate::data::PhotoConfig)
/// with its transform's fields written flat), and `root` (where it lives; not hashed), `folds`
/// (k-fold class-disjoint validation: one cell per fold) and a `train` table of settings over
/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct DatasetTables(BTreeMap<String, Spanned<Layer>>);

impl DatasetTables {
    /// The table of dataset `name`, if the matrix has one.
    pub fn get(&self, name: &DatasetName) -> Option<&Spanned<Layer>> {
        self.0.get(&name.to_string())
    }

    /// Every table with its dataset's name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Spanned<Layer>)> {
        self.0.iter()
    }
}

/// `[losses.<name>]` tables: each loss's hyper-parameters over its defaults (the fields of
/// its configuration type, e.g. [`MarginConfig`](crate::loss::MarginConfig)); a dataset's
/// `[datasets.<name>.losses.<loss>]` lays its own over them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LossTables {
    pub margin: Option<Layer>,
    pub multi_similarity: Option<Layer>,
    pub proxy_anchor: Option<Layer>,
    pub contrastive: Option<Layer>,
    pub triplet: Option<Layer>,
    pub binomial_deviance: Option<Layer>,
    pub normalized_softmax: Option<Layer>,
}

impl LossTables {
    /// The table of loss `name`, if the matrix has one.
    pub fn get(&self, name: LossName) -> Option<&Layer> {
        match name {
            LossName::Margin => self.margin.as_ref(),
            LossName::MultiSimilarity => self.multi_similarity.as_ref(),
            LossName::ProxyAnchor => self.proxy_anchor.as_ref(),
            LossName::Contrastive => self.contrastive.as_ref(),
            LossName::Triplet => self.triplet.as_ref(),
            LossName::BinomialDeviance => self.binomial_deviance.as_ref(),
            LossName::NormalizedSoftmax => self.normalized_softmax.as_ref(),
        }
    }
}

/// One `[[exclude]]` rule; each key takes one value or a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeRule {
    pub protocol: Option<OneOrMany<Protocol>>,
    pub dataset: Option<OneOrMany<DatasetName>>,
    pub backbone: Option<OneOrMany<BackboneKind>>,
    pub head: Option<OneOrMany<HeadKind>>,
    pub loss: Option<OneOrMany<LossName>>,
    pub embedding_size: Option<OneOrMany<usize>>,
    pub groups: Option<OneOrMany<usize>>,
    pub seed: Option<OneOrMany<u64>>,
}

impl ExcludeRule {
    /// The rule as a selection of cells (values compared as a matrix writes them).
    pub fn selection(&self) -> Selection {
        fn add<T: std::fmt::Display>(s: &mut Selection, axis: Axis, key: &Option<OneOrMany<T>>) {
            for value in key.iter().flat_map(|k| &k.0) {
                s.allow(axis, value.to_string());
            }
        }
        let mut s = Selection::default();
        add(&mut s, Axis::Protocol, &self.protocol);
        add(&mut s, Axis::Dataset, &self.dataset);
        add(&mut s, Axis::Backbone, &self.backbone);
        add(&mut s, Axis::Head, &self.head);
        add(&mut s, Axis::Loss, &self.loss);
        add(&mut s, Axis::EmbeddingSize, &self.embedding_size);
        add(&mut s, Axis::Groups, &self.groups);
        add(&mut s, Axis::Seed, &self.seed);
        s
    }
}

/// A value or a list of values (`head = "none"` or `groups = [2, 4]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

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
