//! The embedder: images -> backbone feature map -> grouping head -> per-group embeddings.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::backbones::{Backbone, BackboneKind};
use super::batchnorm::FreezeBatchNorm;
use super::heads::{GroupShape, Head, HeadKind, HeadOutput, HeadShape};
use super::layers::ParamInit;

/// Backbone + head.
#[derive(Module, Debug)]
pub struct Embedder {
    pub backbone: Backbone,
    pub head: Head,
}

/// What an embedder is built from (a run's configuration gives one: `RunConfig::embedder`).
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    pub backbone: BackboneKind,
    /// A PyTorch state dict to start the backbone from.
    pub pretrained: Option<PathBuf>,
    /// How the backbone's BatchNorm is frozen, if it is.
    pub freeze_batchnorm: Option<FreezeBatchNorm>,
    /// GoogLeNet's torchvision input transform.
    pub transform_input: bool,
    pub head: HeadKind,
    pub in_channels: usize,
    pub groups: GroupShape,
    pub reduction: usize,
    pub seed: u64,
}

impl EmbedderConfig {
    /// A freshly initialised embedder (the backbone from its pretrained weights, if any); the
    /// same configuration gives the same parameters.
    pub fn init(&self, device: &Device) -> anyhow::Result<Embedder> {
        let mut init = ParamInit::new(self.seed, device);
        let mut backbone = Backbone::new(
            self.backbone,
            self.in_channels,
            self.transform_input,
            &mut init,
        );
        if let Some(path) = &self.pretrained {
            backbone = super::backbones::pretrained::load_state_dict(backbone, path)?;
        }
        if let Some(mode) = self.freeze_batchnorm {
            backbone = backbone.freeze_batchnorm(mode);
        }
        let shape = HeadShape::new(backbone.channels(), self.groups, self.reduction);
        let head = Head::new(self.head, shape, &mut init);
        Ok(Embedder { backbone, head })
    }
}

impl Embedder {
    /// `[n, c, h, w]` images -> groups `[n, P, d]` (and maps).
    pub fn forward(&self, images: Tensor<4>) -> HeadOutput {
        self.head.forward(self.backbone.forward(images))
    }
}
