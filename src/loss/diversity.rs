//! The diversity loss of A-grouping (METHOD.md): per image, the cosine between two groups'
//! embeddings is pushed below about 0.5 by a binomial-deviance term,
//!
//!   L_div = 1/(P-1) * sum_{p<q} mean_i softplus(50 * (cos(f_i^p, f_i^q) - 0.5)),
//!
//! and it is 0 for P = 1.

use burn::tensor::activation::softplus;
use burn::tensor::{Tensor, TensorData};

/// Binomial-deviance scale (2 * 25 in the authors' code) and margin.
const SCALE: f64 = 50.0;
const MARGIN: f64 = 0.5;

/// `groups`: `[n, P, d]`, each group L2-normalised. Returns a one-element tensor.
pub fn diversity_loss(groups: Tensor<3>) -> Tensor<1> {
    let [n, p, _] = groups.dims();
    let device = groups.device();
    if p < 2 {
        return Tensor::zeros([1], &device);
    }
    // Cosines of every pair of groups of one image: [n, P, P].
    let cosines = groups.clone().matmul(groups.swap_dims(1, 2));
    let deviance = softplus((cosines - MARGIN) * SCALE, 1.0);
    // Keep the pairs p < q.
    let upper: Vec<f32> = (0..p * p)
        .map(|i| if i / p < i % p { 1.0 } else { 0.0 })
        .collect();
    let upper = Tensor::<3>::from_data(TensorData::new(upper, [1, p, p]), &device);
    (deviance * upper).sum().reshape([1]) / (n as f64 * (p - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn groups(values: Vec<f32>, shape: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(values, shape), &Device::default())
    }

    fn softplus_f64(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    #[test]
    fn two_groups_hand_checked() {
        // Image 0: orthogonal groups (cos 0); image 1: identical groups (cos 1).
        let g = groups(vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8, 0.6, 0.8], [2, 2, 2]);
        let expected = (softplus_f64(-25.0) + softplus_f64(25.0)) / 2.0;
        let value = diversity_loss(g).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-4, "{value} vs {expected}");
        assert!((expected - 12.5).abs() < 1e-6);
    }

    #[test]
    fn three_groups_average_over_p_minus_one() {
        // Groups e1, e2, e1: pairs (1,2) cos 0, (1,3) cos 1, (2,3) cos 0; one image.
        let g = groups(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [1, 3, 2]);
        let expected = (2.0 * softplus_f64(-25.0) + softplus_f64(25.0)) / 2.0;
        let value = diversity_loss(g).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-4, "{value} vs {expected}");
    }

    #[test]
    fn cosine_at_the_margin_costs_log_two_and_one_group_costs_nothing() {
        let s = 0.5f32.sqrt();
        // cos((1,0),(s,s)) = s ~ 0.7071: softplus(50 * (0.7071 - 0.5)).
        let g = groups(vec![1.0, 0.0, s, s], [1, 2, 2]);
        let expected = softplus_f64(50.0 * (0.5f64.sqrt() - 0.5));
        let value = diversity_loss(g).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-3, "{value} vs {expected}");
        let single = groups(vec![1.0, 0.0], [1, 1, 2]);
        assert_eq!(diversity_loss(single).into_scalar::<f32>(), 0.0);
    }
}
