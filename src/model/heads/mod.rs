//! Grouping heads: a feature map in, per-group L2-normalised embeddings out.

pub mod attentive;
pub mod flatten;
pub mod none;

use std::fmt;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use attentive::AttentiveGrouping;
pub use flatten::FlattenHead;
pub use none::NoGrouping;

use super::layers::ParamInit;

/// Head names accepted on the `head` axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Global average pooling + bias-free linear: one group.
    None,
    /// A-grouping: learnable per-group queries attending over positions.
    Attentive,
}

impl HeadKind {
    /// False for heads that always produce one group.
    pub fn has_groups(self) -> bool {
        !matches!(self, HeadKind::None)
    }
}

impl fmt::Display for HeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadKind::None => "none",
            HeadKind::Attentive => "attentive",
        })
    }
}

/// What a head returns.
#[derive(Debug, Clone)]
pub struct HeadOutput {
    /// `[n, P, d]`, each group L2-normalised.
    pub groups: Tensor<3>,
    /// `[n, P, H, W]` spatial maps (attention), for heads that have them.
    pub maps: Option<Tensor<4>>,
}

/// The size of a head: channels in, groups and per-group size out.
#[derive(Debug, Clone, Copy)]
pub struct HeadShape {
    pub channels: usize,
    pub groups: usize,
    pub group_size: usize,
    pub reduction: usize,
}

/// A head of any kind.
#[derive(Module, Debug)]
pub enum Head {
    None(NoGrouping),
    Attentive(AttentiveGrouping),
}

impl Head {
    /// A freshly initialised head.
    pub fn new(kind: HeadKind, shape: HeadShape, init: &mut ParamInit) -> Self {
        match kind {
            HeadKind::None => Head::None(NoGrouping::new(shape.channels, shape.group_size, init)),
            HeadKind::Attentive => Head::Attentive(AttentiveGrouping::new(shape, init)),
        }
    }

    /// `[n, C, H, W]` -> per-group embeddings (and maps).
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        match self {
            Head::None(h) => h.forward(features),
            Head::Attentive(h) => h.forward(features),
        }
    }
}
