//! Backbones: CNNs that end in a spatial feature map.

pub mod convnet_small;
pub mod inception;
pub mod pretrained;
pub mod resnet;

use std::fmt;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use convnet_small::ConvNetSmall;
pub use inception::{BnInception, GoogLeNet};
pub use resnet::{ResNet, ResNetDepth};

use super::batchnorm::FreezeBatchNorm;
use super::layers::ParamInit;

/// Backbone names accepted on the `backbone` axis.
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
pub enum BackboneKind {
    ConvnetSmall,
    Resnet18,
    Resnet50,
    Googlenet,
    Bninception,
}

impl BackboneKind {
    /// Every backbone.
    pub const ALL: [BackboneKind; 5] = [
        BackboneKind::ConvnetSmall,
        BackboneKind::Resnet18,
        BackboneKind::Resnet50,
        BackboneKind::Googlenet,
        BackboneKind::Bninception,
    ];

    /// Total stride of the last feature map (a shift by a multiple of it permutes positions).
    pub fn total_stride(self) -> usize {
        match self {
            BackboneKind::ConvnetSmall => 4,
            _ => 32,
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackboneKind::ConvnetSmall => "convnet-small",
            BackboneKind::Resnet18 => "resnet18",
            BackboneKind::Resnet50 => "resnet50",
            BackboneKind::Googlenet => "googlenet",
            BackboneKind::Bninception => "bninception",
        })
    }
}

/// A backbone with its options: the part of a run's configuration that says which network
/// computes the feature map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub name: BackboneKind,
    /// File name of the PyTorch state dict the backbone starts from (its folder is where, not
    /// what, and stays out of the hash); random initialisation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<String>,
    /// Keep every BatchNorm's running statistics fixed (eval mode), as the authors' ResNet-50
    /// (`module.eval(); module.train = lambda _: None`): gamma and beta still train.
    #[serde(default)]
    pub freeze_batchnorm: bool,
    /// With `freeze_batchnorm`: fix gamma and beta too (agml's choice before semantics 5; an
    /// ablation of the authors' recipe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_batchnorm_affine: bool,
    /// GoogLeNet: torchvision's `transform_input` (ImageNet normalisation rescaled to
    /// (x - 0.5) / 0.5) before the first conv. The authors take `children()[:-3]`, which
    /// leaves it out: off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transform_input: bool,
}

/// A backbone of any kind.
// One backbone per model: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    ConvnetSmall(ConvNetSmall),
    ResNet(ResNet),
    GoogLeNet(GoogLeNet),
    BnInception(BnInception),
}

impl BackboneConfig {
    /// How the backbone's BatchNorm is frozen, if it is.
    pub fn frozen_batchnorm(&self) -> Option<FreezeBatchNorm> {
        match (self.freeze_batchnorm, self.freeze_batchnorm_affine) {
            (false, _) => None,
            (true, false) => Some(FreezeBatchNorm::Statistics),
            (true, true) => Some(FreezeBatchNorm::All),
        }
    }
}

impl Backbone {
    /// A freshly initialised backbone for images with `in_channels` channels.
    /// `transform_input` applies torchvision's GoogLeNet input transform (GoogLeNet only).
    pub fn new(
        kind: BackboneKind,
        in_channels: usize,
        transform_input: bool,
        init: &mut ParamInit,
    ) -> Self {
        match kind {
            BackboneKind::ConvnetSmall => {
                Backbone::ConvnetSmall(ConvNetSmall::new(in_channels, init))
            }
            BackboneKind::Resnet18 => {
                Backbone::ResNet(ResNet::new(ResNetDepth::R18, in_channels, init))
            }
            BackboneKind::Resnet50 => {
                Backbone::ResNet(ResNet::new(ResNetDepth::R50, in_channels, init))
            }
            BackboneKind::Googlenet => {
                Backbone::GoogLeNet(GoogLeNet::new(in_channels, transform_input, init))
            }
            BackboneKind::Bninception => Backbone::BnInception(BnInception::new(in_channels, init)),
        }
    }

    /// Channels C of the last feature map.
    pub fn channels(&self) -> usize {
        match self {
            Backbone::ConvnetSmall(b) => b.channels(),
            Backbone::ResNet(b) => b.channels,
            Backbone::GoogLeNet(_) | Backbone::BnInception(_) => 1024,
        }
    }

    /// Every BatchNorm frozen as `mode` says.
    pub fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        match self {
            Backbone::ConvnetSmall(b) => Backbone::ConvnetSmall(b.freeze_batchnorm(mode)),
            Backbone::ResNet(b) => Backbone::ResNet(b.freeze_batchnorm(mode)),
            Backbone::GoogLeNet(b) => Backbone::GoogLeNet(b.freeze_batchnorm(mode)),
            Backbone::BnInception(b) => Backbone::BnInception(b.freeze_batchnorm(mode)),
        }
    }

    /// `[n, c, h, w]` images -> `[n, C, H, W]` feature map.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        match self {
            Backbone::ConvnetSmall(b) => b.forward(images),
            Backbone::ResNet(b) => b.forward(images),
            Backbone::GoogLeNet(b) => b.forward(images),
            Backbone::BnInception(b) => b.forward(images),
        }
    }
}
