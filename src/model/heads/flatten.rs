//! A position-dependent head (flatten the map, then linear): the negative control of the
//! invariance checks. Permuting positions changes its output, so a check that passes it is
//! broken.

use burn::module::Module;
use burn::tensor::Tensor;

use super::HeadOutput;
use crate::model::layers::{Linear, ParamInit, l2_normalize};

/// Flatten + bias-free linear: one group that depends on where features are.
#[derive(Module, Debug)]
pub struct FlattenHead {
    pub projection: Linear,
}

impl FlattenHead {
    /// A head for maps of `channels` x `positions` into `size` dimensions.
    pub fn new(channels: usize, positions: usize, size: usize, init: &mut ParamInit) -> Self {
        Self {
            projection: Linear::new(init, channels * positions, size),
        }
    }

    /// `[n, N, C]` positions -> `[n, 1, D]`
    pub fn forward_positions(&self, positions: Tensor<3>) -> HeadOutput {
        let [n, count, channels] = positions.dims();
        let flat = positions.reshape([n, 1, count * channels]);
        HeadOutput {
            groups: l2_normalize(self.projection.forward(flat)),
            maps: None,
        }
    }
}
