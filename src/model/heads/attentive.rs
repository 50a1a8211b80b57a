//! A-grouping: "Towards Improved and Interpretable Deep Metric Learning via Attentive
//! Grouping" (Xu et al., TPAMI; arXiv 2011.08877).
//!
//! keys k_j = W_K x_j (C -> C/r), values v_j = W_V x_j (C -> d), both bias-free and shared by
//! the groups; one learnable query q_p per group; a_p = softmax_j(q_p . k_j) over the N
//! positions (no scaling); f_p = sum_j a_pj v_j, L2-normalised per group.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::{HeadOutput, HeadShape};
use crate::model::layers::{Linear, ParamInit, l2_normalize};

/// The attentive grouping head.
#[derive(Module, Debug)]
pub struct AttentiveGrouping {
    /// W_K: 1x1 conv C -> C/r.
    pub keys: Linear,
    /// W_V: 1x1 conv C -> d.
    pub values: Linear,
    /// `[P, C/r]`: the only group-specific parameters.
    pub queries: Param<Tensor<2>>,
    /// The "A-grouping + linear" variant's bias-free d x d map shared by the groups.
    pub post: Option<Linear>,
}

impl AttentiveGrouping {
    /// Queries start uniform in +-1/sqrt(C/r), as in the authors' code; `with_linear` adds the
    /// shared d x d map after pooling.
    pub fn new(shape: HeadShape, with_linear: bool, init: &mut ParamInit) -> Self {
        let key_size = (shape.channels / shape.reduction).max(1);
        Self {
            keys: Linear::new(init, shape.channels, key_size),
            values: Linear::new(init, shape.channels, shape.group_size),
            queries: init.uniform([shape.groups, key_size], 1.0 / (key_size as f64).sqrt()),
            post: with_linear.then(|| Linear::new(init, shape.group_size, shape.group_size)),
        }
    }

    /// `[n, C, H, W]` -> groups `[n, P, d]` and attention maps `[n, P, H, W]`.
    pub fn forward(&self, features: Tensor<4>) -> HeadOutput {
        let [n, channels, height, width] = features.dims();
        // [n, N, C]: one C-vector per position.
        let positions = features
            .reshape([n, channels, height * width])
            .swap_dims(1, 2);
        let (groups, attention) = self.forward_positions(positions);
        let groups_count = groups.dims()[1];
        // [n, N, P] -> [n, P, H, W]
        let maps = attention
            .swap_dims(1, 2)
            .reshape([n, groups_count, height, width]);
        HeadOutput {
            groups,
            maps: Some(maps),
        }
    }

    /// `[n, N, C]` positions -> (groups `[n, P, d]`, attention `[n, N, P]`).
    ///
    /// Nothing here depends on the order of the N positions: permuting them permutes the
    /// attention alike and leaves the groups unchanged (the paper's invariance property).
    pub fn forward_positions(&self, positions: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let keys = self.keys.forward(positions.clone()); // [n, N, C/r]
        let values = self.values.forward(positions); // [n, N, d]
        let scores = burn::tensor::module::linear(keys, self.queries.val().transpose(), None); // [n, N, P]
        let attention = softmax(scores, 1); // over positions
        let pooled = attention.clone().swap_dims(1, 2).matmul(values); // [n, P, d]
        let pooled = match &self.post {
            Some(post) => post.forward(pooled),
            None => pooled,
        };
        (l2_normalize(pooled), attention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::heads::FlattenHead;
    use burn::tensor::{Device, Distribution, Int, TensorData};

    const N: usize = 2;
    const C: usize = 16;
    const H: usize = 3;
    const W: usize = 4;

    fn head(groups: usize) -> AttentiveGrouping {
        let shape = HeadShape {
            channels: C,
            groups,
            group_size: 12 / groups,
            reduction: 4,
        };
        AttentiveGrouping::new(shape, false, &mut ParamInit::new(7, &Device::default()))
    }

    fn features() -> Tensor<4> {
        let device = Device::default();
        device.seed(11);
        Tensor::random([N, C, H, W], Distribution::Normal(0.0, 1.0), &device)
    }

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// `[n, N, C]` positions of a map and the same positions permuted by `perm`.
    fn permuted(positions: Tensor<3>, perm: &[usize]) -> Tensor<3> {
        let ids: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(ids, [perm.len()]), &positions.device());
        positions.select(1, index)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    // A fixed permutation of the 12 positions (no fixed point).
    const PERM: [usize; 12] = [5, 11, 0, 7, 2, 9, 4, 1, 10, 3, 8, 6];

    #[test]
    fn shapes_and_unit_norm_groups() {
        let out = head(3).forward(features());
        assert_eq!(out.groups.dims(), [N, 3, 4]);
        assert_eq!(out.maps.as_ref().unwrap().dims(), [N, 3, H, W]);
        let norms = values(out.groups.square().sum_dim(2));
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    }

    #[test]
    fn attention_sums_to_one_over_positions() {
        let maps = head(4).forward(features()).maps.unwrap();
        let sums = maps
            .reshape([N, 4, H * W])
            .sum_dim(2)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(sums.len(), N * 4);
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    #[test]
    fn output_is_invariant_and_attention_equivariant_under_position_permutations() {
        let head = head(3);
        let positions = features().reshape([N, C, H * W]).swap_dims(1, 2);
        let (groups, attention) = head.forward_positions(positions.clone());
        let (groups_p, attention_p) = head.forward_positions(permuted(positions, &PERM));
        let diff = max_abs_diff(&values(groups), &values(groups_p));
        assert!(diff <= 1e-5, "groups changed by {diff}");
        // The attention of the permuted input is the permuted attention ...
        let expected = values(permuted(attention.clone(), &PERM));
        let diff = max_abs_diff(&expected, &values(attention_p.clone()));
        assert!(diff <= 1e-6, "attention not permuted alike: {diff}");
        // ... which differs from the unpermuted one (so the check above has teeth).
        let moved = max_abs_diff(&values(attention), &values(attention_p));
        assert!(moved > 1e-3, "attention did not move: {moved}");
    }

    #[test]
    fn a_position_dependent_head_fails_the_same_check() {
        let control = FlattenHead::new(C, H * W, 12, &mut ParamInit::new(7, &Device::default()));
        let positions = features().reshape([N, C, H * W]).swap_dims(1, 2);
        let out = control.forward_positions(positions.clone()).groups;
        let out_p = control.forward_positions(permuted(positions, &PERM)).groups;
        let diff = max_abs_diff(&values(out), &values(out_p));
        assert!(diff > 1e-2, "the negative control looks invariant: {diff}");
    }
}
