//! Shared pieces of the pair- and proxy-based losses: label masks, index tensors, distances
//! of selected pairs, and a masked log-sum-exp.

use burn::module::Param;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::model::layers::{ParamInit, l2_normalize};

/// `[rows, cols]` mask from a predicate on (row, col).
pub fn mask(
    rows: usize,
    cols: usize,
    device: &Device,
    keep: impl Fn(usize, usize) -> bool,
) -> Tensor<2, Bool> {
    let values: Vec<bool> = (0..rows * cols).map(|i| keep(i / cols, i % cols)).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// A 1-D index tensor.
pub fn index(ids: impl IntoIterator<Item = usize>, device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = ids.into_iter().map(|i| i as i64).collect();
    let len = ids.len();
    Tensor::from_data(TensorData::new(ids, [len]), device)
}

/// Euclidean distance between rows `a[k]` and `b[k]` of `embedding` `[n, d]`, for each k.
///
/// Computed from differences, not from |x|^2 + |y|^2 - 2xy, so close pairs keep their precision.
pub fn pair_distances(embedding: &Tensor<2>, a: &[usize], b: &[usize]) -> Tensor<1> {
    let device = embedding.device();
    let left = embedding
        .clone()
        .select(0, index(a.iter().copied(), &device));
    let right = embedding
        .clone()
        .select(0, index(b.iter().copied(), &device));
    (left - right)
        .square()
        .sum_dim(1)
        .clamp_min(1e-16)
        .sqrt()
        .reshape([-1])
}

/// The values of a float tensor, read back to the host (for mining decisions).
pub fn host_values<const D: usize>(tensor: &Tensor<D>) -> Vec<f32> {
    tensor
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

/// One vector per (group, class), `[P, classes, d]` uniform in +-1 / sqrt(d): the proxies
/// and class weights of the proxy-based losses.
pub fn class_vectors(
    init: &mut ParamInit,
    groups: usize,
    classes: usize,
    size: usize,
) -> Param<Tensor<3>> {
    init.uniform([groups, classes, size], 1.0 / (size as f64).sqrt())
}

/// Slice `group` of a per-group parameter `[P, classes, d]` (proxies, class weights).
pub fn group_rows(per_group: &Tensor<3>, group: usize) -> Tensor<2> {
    let [_, classes, size] = per_group.dims();
    per_group
        .clone()
        .narrow(0, group, 1)
        .reshape([classes, size])
}

/// Cosine similarities `[n, m]` of the rows of `a` `[n, d]` and `b` `[m, d]` (both
/// L2-normalised here).
pub fn cosines(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    l2_normalize(a).matmul(l2_normalize(b).transpose())
}

/// log(1 + sum over kept entries of exp(x)) along `dim` (1: per row, 0: per column); 0 where
/// nothing is kept. pytorch-metric-learning's `logsumexp(add_one=True)`.
pub fn logsumexp_add_one(x: Tensor<2>, keep: Tensor<2, Bool>, dim: usize) -> Tensor<2> {
    let x = x.mask_fill(keep.bool_not(), -1e30);
    // The shift only guards exp(); it is a constant for the gradient.
    let shift = x.clone().max_dim(dim).clamp_min(0.0).detach();
    let summed = (x - shift.clone()).exp().sum_dim(dim) + shift.clone().neg().exp();
    summed.log() + shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logsumexp_add_one_matches_the_definition() {
        let device = Device::default();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 2.0, -1.0, 30.0, 1.0, 3.0], [2, 3]),
            &device,
        );
        let keep = mask(2, 3, &device, |r, c| {
            (r == 0 && c != 1) || (r == 1 && c != 2)
        });
        let got = logsumexp_add_one(x, keep, 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let row0 = (1.0f64 + 0.5f64.exp() + (-1.0f64).exp()).ln();
        let row1 = (1.0f64 + 30.0f64.exp() + 1.0f64.exp()).ln();
        assert!((got[0] as f64 - row0).abs() < 1e-6);
        assert!((got[1] as f64 - row1).abs() < 1e-5);
        let empty = mask(2, 3, &device, |_, _| false);
        let x = Tensor::<2>::ones([2, 3], &device);
        let got = logsumexp_add_one(x, empty, 0)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(got, vec![0.0; 3]);
    }
}
