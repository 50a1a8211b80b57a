//! Backbones: CNNs that end in a spatial feature map.

pub mod convnet_small;

use std::fmt;

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use convnet_small::ConvNetSmall;

use super::layers::ParamInit;

/// Backbone names accepted on the `backbone` axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    ConvnetSmall,
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackboneKind::ConvnetSmall => "convnet-small",
        })
    }
}

/// A backbone of any kind.
#[derive(Module, Debug)]
pub enum Backbone {
    ConvnetSmall(ConvNetSmall),
}

impl Backbone {
    /// A freshly initialised backbone for images with `in_channels` channels.
    pub fn new(kind: BackboneKind, in_channels: usize, init: &mut ParamInit) -> Self {
        match kind {
            BackboneKind::ConvnetSmall => {
                Backbone::ConvnetSmall(ConvNetSmall::new(in_channels, init))
            }
        }
    }

    /// Channels C of the last feature map.
    pub fn channels(&self) -> usize {
        match self {
            Backbone::ConvnetSmall(b) => b.channels(),
        }
    }

    /// `[n, c, h, w]` images -> `[n, C, H, W]` feature map.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        match self {
            Backbone::ConvnetSmall(b) => b.forward(images),
        }
    }
}
