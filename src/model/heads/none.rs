//! No grouping: global average pooling, then a bias-free linear map C -> D (one group).

use burn::module::Module;
use burn::tensor::Tensor;

use super::HeadOutput;
use crate::model::layers::{Linear, ParamInit, l2_normalize};

/// The no-grouping baseline head.
#[derive(Module, Debug)]
pub struct NoGrouping {
    pub projection: Linear,
}

impl NoGrouping {
    /// A head embedding C channels into `size` dimensions.
    pub fn new(channels: usize, size: usize, init: &mut ParamInit) -> Self {
        Self {
            projection: Linear::new(init, channels, size),
        }
    }

    /// `[n, C, H, W]` -> `[n, 1, D]`
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        let pooled = super::global_average(features); // [n, C]
        let [n, _] = pooled.dims();
        let embedded = self.projection.forward(pooled).reshape([n as i64, 1, -1]); // [n, 1, D]
        HeadOutput {
            groups: l2_normalize(embedded),
            maps: None,
        }
    }
}
