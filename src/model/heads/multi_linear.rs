//! Conventional grouping ("multi-linear"): global average pooling, a bias-free linear map
//! C -> P*d, split into P groups, each L2-normalised.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{HeadOutput, HeadShape, global_average};
use crate::model::layers::{Linear, ParamInit, l2_normalize};

/// The conventional grouping baseline.
#[derive(Module, Debug)]
pub struct MultiLinear {
    pub projection: Linear,
    pub groups: usize,
}

impl MultiLinear {
    /// A head for `shape.channels` into `shape.groups` x `shape.group_size`.
    pub fn new(shape: HeadShape, init: &mut ParamInit) -> Self {
        Self {
            projection: Linear::new(init, shape.channels, shape.groups * shape.group_size),
            groups: shape.groups,
        }
    }

    /// `[n, C, H, W]` -> `[n, P, d]`
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        let pooled = global_average(features); // [n, C]
        let [n, _] = pooled.dims();
        let embedded = self
            .projection
            .forward(pooled)
            .reshape([n as i64, self.groups as i64, -1]);
        HeadOutput {
            groups: l2_normalize(embedded),
            maps: None,
        }
    }
}
