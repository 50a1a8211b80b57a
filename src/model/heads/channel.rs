//! Channel grouping (squeeze-and-excitation per group; Hu et al., CVPR 2018), as the
//! A-grouping paper compares against it: per group GAP -> FC C -> C/5 -> ReLU -> FC C/5 -> C
//! -> sigmoid = w_p; y_p = GAP(X * w_p); a shared linear C -> d (with bias).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

use super::{HeadOutput, HeadShape, global_average};
use crate::model::layers::{GroupedLinear, Linear, ParamInit, l2_normalize};

/// SE squeeze ratio of the paper's channel grouping.
const SQUEEZE: usize = 5;

/// The channel (SE-style) grouping head.
#[derive(Module, Debug)]
pub struct ChannelGrouping {
    pub squeeze: GroupedLinear,
    pub excite: GroupedLinear,
    pub projection: Linear,
}

impl ChannelGrouping {
    /// A head of `shape`.
    pub fn new(shape: HeadShape, init: &mut ParamInit) -> Self {
        let hidden = (shape.channels / SQUEEZE).max(1);
        Self {
            // Bias-free SE layers, as the authors wrote them; the projection has a bias.
            squeeze: GroupedLinear::new(init, shape.groups, shape.channels, hidden),
            excite: GroupedLinear::new(init, shape.groups, hidden, shape.channels),
            projection: Linear::with_bias(init, shape.channels, shape.group_size),
        }
    }

    /// `[n, C, H, W]` -> `[n, P, d]`
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        let pooled = global_average(features); // [n, C]
        let [n, channels] = pooled.dims();
        let p = self.squeeze.weight.dims()[0];
        let squeezed = pooled
            .clone()
            .reshape([n, 1, 1, channels])
            .expand([n, p, 1, channels]);
        let weights = sigmoid(self.excite.forward(relu(self.squeeze.forward(squeezed)))); // [n, P, 1, C]
        // w_p is constant over positions, so GAP(X * w_p) = GAP(X) * w_p.
        let reweighted = pooled.reshape([n, 1, channels]) * weights.reshape([n, p, channels]);
        HeadOutput {
            groups: l2_normalize(self.projection.forward(reweighted)),
            maps: None,
        }
    }
}
