//! A small CNN for 28x28 grey images that keeps a 7x7 map at its last stage (total stride 4).

use crate::model::ops::relu;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Tensor;

use crate::model::batchnorm::{FreezeBatchNorm, batch_norm};
use crate::model::layers::{Conv2d, ParamInit};

/// (output channels, stride) of each 3x3 conv + BN + ReLU block.
const BLOCKS: [(usize, usize); 4] = [(16, 1), (32, 2), (64, 2), (64, 1)];

/// conv-BN-ReLU x 4: 28x28 -> 28 -> 14 -> 7 -> 7, ending with 64 channels (about 3.7 M
/// multiply-adds per image: small enough to train the Fashion-MNIST matrix on two cores).
#[derive(Module, Debug)]
pub struct ConvNetSmall {
    blocks: Vec<ConvBnRelu>,
}

#[derive(Module, Debug)]
struct ConvBnRelu {
    conv: Conv2d,
    norm: BatchNorm,
}

impl ConvNetSmall {
    /// A new network for `in_channels`-channel images.
    pub fn new(in_channels: usize, init: &mut ParamInit) -> Self {
        let mut input = in_channels;
        let blocks = BLOCKS
            .iter()
            .map(|&(output, stride)| {
                let block = ConvBnRelu {
                    conv: Conv2d::new(init, input, output, 3, stride),
                    norm: BatchNormConfig::new(output).init(init.device()),
                };
                input = output;
                block
            })
            .collect();
        Self { blocks }
    }

    /// Channels of the output map.
    pub fn channels(&self) -> usize {
        BLOCKS[BLOCKS.len() - 1].0
    }

    /// Every BatchNorm frozen as `mode` says.
    pub fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        Self {
            blocks: self
                .blocks
                .into_iter()
                .map(|b| ConvBnRelu {
                    conv: b.conv,
                    norm: mode.apply(b.norm),
                })
                .collect(),
        }
    }

    /// `[n, c, 28, 28]` -> `[n, 64, 7, 7]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| {
            relu(batch_norm(&block.norm, block.conv.forward(x)))
        })
    }
}
