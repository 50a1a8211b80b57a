//! The embedder: images -> backbone feature map -> grouping head -> per-group embeddings.

use std::path::PathBuf;

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
#[derive(Debug, Clone)]
pub struct EmbedderSpec {
    pub backbone: BackboneKind,
    /// A PyTorch state dict to start the backbone from.
    pub pretrained: Option<PathBuf>,
    pub freeze_batchnorm: bool,
    pub head: HeadKind,
    pub in_channels: usize,
    pub groups: usize,
    pub embedding_size: usize,
    pub reduction: usize,
    pub seed: u64,
}

impl Embedder {
    /// A freshly initialised embedder (the backbone from its pretrained weights, if any); the
    /// same spec gives the same parameters.
    pub fn new(spec: &EmbedderSpec, device: &Device) -> anyhow::Result<Self> {
        let mut init = ParamInit::new(spec.seed, device);
        let mut backbone = Backbone::new(
            spec.backbone,
            spec.in_channels,
            spec.pretrained.is_some(),
            &mut init,
        );
        if let Some(path) = &spec.pretrained {
            backbone = super::backbones::pretrained::load_state_dict(backbone, path)?;
        }
        if spec.freeze_batchnorm {
            backbone = backbone.freeze_batchnorm();
        }
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
        Ok(Self { backbone, head })
    }

    /// `[n, c, h, w]` images -> groups `[n, P, d]` (and maps).
    pub fn forward(&self, images: Tensor<4>) -> HeadOutput {
        self.head.forward(self.backbone.forward(images))
    }
}
