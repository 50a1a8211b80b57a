//! Gate grouping (ABE-like attention masks; Kim et al., "Attention-based Ensemble for Deep
//! Metric Learning", ECCV 2018), as the A-grouping paper compares against it:
//! a shared 1x1 conv C -> C/r (with bias); per group a 1x1 conv C/r -> C (with bias) giving a
//! mask m_p (no sigmoid); y_p = GAP(X * m_p); a shared bias-free linear C -> d.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{HeadOutput, HeadShape};
use crate::model::layers::{GroupedLinear, Linear, ParamInit, l2_normalize};

/// The gate (attention-mask) grouping head.
#[derive(Module, Debug)]
pub struct GateGrouping {
    /// Shared 1x1 conv C -> C/r.
    pub shared: Linear,
    /// Per-group 1x1 conv C/r -> C.
    pub masks: GroupedLinear,
    /// Shared C -> d.
    pub projection: Linear,
}

impl GateGrouping {
    /// A head of `shape`.
    pub fn new(shape: HeadShape, init: &mut ParamInit) -> Self {
        let reduced = (shape.channels / shape.reduction).max(1);
        Self {
            shared: Linear::with_bias(init, shape.channels, reduced),
            masks: GroupedLinear::with_bias(init, shape.groups, reduced, shape.channels),
            projection: Linear::new(init, shape.channels, shape.group_size),
        }
    }

    /// `[n, C, H, W]` -> groups `[n, P, d]` and masks averaged over channels `[n, P, H, W]`.
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        let [n, channels, height, width] = features.dims();
        let positions = features
            .reshape([n, channels, height * width])
            .swap_dims(1, 2); // [n, N, C]
        let (groups, masks) = self.forward_positions(positions);
        let p = groups.dims()[1];
        // The channel-mean of each mask is its spatial map (for figures).
        let maps = masks.mean_dim(3).reshape([n, p, height, width]);
        HeadOutput {
            groups,
            maps: Some(maps),
        }
    }

    /// `[n, N, C]` -> (groups `[n, P, d]`, masks `[n, P, N, C]`).
    pub fn forward_positions(&self, positions: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let [n, count, channels] = positions.dims();
        let p = self.masks.weight.dims()[0];
        let reduced = self.shared.forward(positions.clone()); // [n, N, C/r]
        let r = reduced.dims()[2];
        let masks = self
            .masks
            .forward(reduced.unsqueeze_dim::<4>(1).expand([n, p, count, r])); // [n, P, N, C]
        let gated = positions
            .unsqueeze_dim::<4>(1)
            .expand([n, p, count, channels])
            * masks.clone();
        let pooled = gated.mean_dim(2).reshape([n, p, channels]); // GAP over positions
        (l2_normalize(self.projection.forward(pooled)), masks)
    }
}
