//! The embedder: images -> backbone feature map -> grouping head -> per-group embeddings.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::backbones::{Backbone, BackboneKind};
use super::heads::{Head, HeadKind, HeadOutput, HeadShape};
use super::layers::ParamInit;

/// Backbone + head.
#[derive(Module, Debug)]
pub struct Embedder {
    pub backbone: Backbone,
    pub head: Head,
}

/// What an embedder is built from.
#[derive(Debug, Clone, Copy)]
pub struct EmbedderSpec {
    pub backbone: BackboneKind,
    pub head: HeadKind,
    pub in_channels: usize,
    pub groups: usize,
    pub embedding_size: usize,
    pub reduction: usize,
    pub seed: u64,
}

impl Embedder {
    /// A freshly initialised embedder; the same spec gives the same parameters.
    pub fn new(spec: EmbedderSpec, device: &Device) -> Self {
        let mut init = ParamInit::new(spec.seed, device);
        let backbone = Backbone::new(spec.backbone, spec.in_channels, &mut init);
        let groups = if spec.head.has_groups() {
            spec.groups
        } else {
            1
        };
        let shape = HeadShape {
            channels: backbone.channels(),
            groups,
            group_size: spec.embedding_size / groups,
            reduction: spec.reduction,
        };
        let head = Head::new(spec.head, shape, &mut init);
        Self { backbone, head }
    }

    /// `[n, c, h, w]` images -> groups `[n, P, d]` (and maps).
    pub fn forward(&self, images: Tensor<4>) -> HeadOutput {
        self.head.forward(self.backbone.forward(images))
    }
}
