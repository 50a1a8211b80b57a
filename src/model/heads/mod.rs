//! Grouping heads: a feature map in, per-group L2-normalised embeddings out.

pub mod attentive;
pub mod channel;
pub mod flatten;
pub mod gate;
pub mod multi_linear;
pub mod none;

use std::fmt;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use attentive::AttentiveGrouping;
pub use channel::ChannelGrouping;
pub use flatten::FlattenHead;
pub use gate::GateGrouping;
pub use multi_linear::MultiLinear;
pub use none::NoGrouping;

use super::layers::ParamInit;

/// Head names accepted on the `head` axis.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Global average pooling + bias-free linear: one group.
    None,
    /// Conventional grouping: GAP, linear C -> P*d, split.
    MultiLinear,
    /// ABE-like attention masks per group.
    Gate,
    /// Squeeze-and-excitation channel weights per group.
    Channel,
    /// A-grouping: learnable per-group queries attending over positions.
    Attentive,
    /// A-grouping followed by a shared d x d linear map.
    AttentiveLinear,
}

impl HeadKind {
    /// Every head, in the order tables list them.
    pub const ALL: [HeadKind; 6] = [
        HeadKind::None,
        HeadKind::MultiLinear,
        HeadKind::Gate,
        HeadKind::Channel,
        HeadKind::Attentive,
        HeadKind::AttentiveLinear,
    ];

    /// False for heads that always produce one group.
    pub fn has_groups(self) -> bool {
        !matches!(self, HeadKind::None)
    }
}

impl fmt::Display for HeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadKind::None => "none",
            HeadKind::MultiLinear => "multi-linear",
            HeadKind::Gate => "gate",
            HeadKind::Channel => "channel",
            HeadKind::Attentive => "attentive",
            HeadKind::AttentiveLinear => "attentive-linear",
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

/// The groups a head produces: the one place the effective count P and the per-group size
/// d = D / P (integer division, as in the paper) are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupShape {
    pub groups: usize,
    pub group_size: usize,
}

impl GroupShape {
    /// `requested` groups of a total embedding size D for `head` (heads without groups have
    /// one, of size D).
    pub fn of(head: HeadKind, requested: usize, embedding_size: usize) -> Self {
        let groups = if head.has_groups() { requested } else { 1 };
        Self {
            groups,
            group_size: embedding_size / groups,
        }
    }
}

/// The size of a head: channels in, groups and per-group size out.
#[derive(Debug, Clone, Copy)]
pub struct HeadShape {
    pub channels: usize,
    pub groups: usize,
    pub group_size: usize,
    pub reduction: usize,
}

impl HeadShape {
    /// A head of `groups` over `channels` input channels.
    pub fn new(channels: usize, groups: GroupShape, reduction: usize) -> Self {
        Self {
            channels,
            groups: groups.groups,
            group_size: groups.group_size,
            reduction,
        }
    }
}

/// A head of any kind.
#[derive(Module, Debug)]
pub enum Head {
    None(NoGrouping),
    MultiLinear(MultiLinear),
    Gate(GateGrouping),
    Channel(ChannelGrouping),
    Attentive(AttentiveGrouping),
}

impl Head {
    /// A freshly initialised head.
    pub fn new(kind: HeadKind, shape: HeadShape, init: &mut ParamInit) -> Self {
        match kind {
            HeadKind::None => Head::None(NoGrouping::new(shape.channels, shape.group_size, init)),
            HeadKind::MultiLinear => Head::MultiLinear(MultiLinear::new(shape, init)),
            HeadKind::Gate => Head::Gate(GateGrouping::new(shape, init)),
            HeadKind::Channel => Head::Channel(ChannelGrouping::new(shape, init)),
            HeadKind::Attentive => Head::Attentive(AttentiveGrouping::new(shape, false, init)),
            HeadKind::AttentiveLinear => Head::Attentive(AttentiveGrouping::new(shape, true, init)),
        }
    }

    /// `[n, C, H, W]` -> per-group embeddings (and maps).
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        match self {
            Head::None(h) => h.forward(features),
            Head::MultiLinear(h) => h.forward(features),
            Head::Gate(h) => h.forward(features),
            Head::Channel(h) => h.forward(features),
            Head::Attentive(h) => h.forward(features),
        }
    }
}

/// Global average pooling: `[n, C, H, W]` -> `[n, C]`.
pub fn global_average(features: Tensor<4>) -> Tensor<2> {
    let [n, channels, height, width] = features.dims();
    features
        .reshape([n, channels, height * width])
        .mean_dim(2)
        .reshape([n, channels])
}

#[cfg(test)]
mod tests;
