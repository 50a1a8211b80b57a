//! Binomial deviance loss (Yi et al., "Deep Metric Learning for Person Re-identification",
//! ICPR 2014) on cosine similarities s of all pairs:
//!   mean over positive pairs of softplus(-alpha (s - beta))
//!   + mean over negative pairs of softplus(alpha * cost * (s - beta)),
//!
//! with the paper's alpha = 2, beta = 0.5, cost = 25 (the same term as the diversity loss).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::softplus;
use serde::{Deserialize, Serialize};

use super::pairs::{cosines, mask};

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BinomialDevianceConfig {
    pub alpha: f64,
    pub beta: f64,
    /// Weight C of the negative pairs inside the exponent.
    pub cost: f64,
}

impl Default for BinomialDevianceConfig {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            beta: 0.5,
            cost: 25.0,
        }
    }
}

/// The binomial deviance loss.
#[derive(Module, Debug)]
pub struct BinomialDeviance {
    pub alpha: f64,
    pub beta: f64,
    pub cost: f64,
}

impl BinomialDeviance {
    pub fn new(config: &BinomialDevianceConfig) -> Self {
        Self {
            alpha: config.alpha,
            beta: config.beta,
            cost: config.cost,
        }
    }

    /// `embedding`: `[n, d]` (normalised here). Returns a one-element tensor.
    pub fn forward(&self, embedding: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let n = labels.len();
        let device = embedding.device();
        let similarity = cosines(embedding.clone(), embedding);
        let positive = |i: usize, j: usize| i != j && labels[i] == labels[j];
        let negative = |i: usize, j: usize| labels[i] != labels[j];
        let pos_count = (0..n * n).filter(|&k| positive(k / n, k % n)).count();
        let neg_count = (0..n * n).filter(|&k| negative(k / n, k % n)).count();
        let pos_mask = mask(n, n, &device, positive).float();
        let neg_mask = mask(n, n, &device, negative).float();
        let pos = softplus((similarity.clone() - self.beta) * -self.alpha, 1.0) * pos_mask;
        let neg = softplus((similarity - self.beta) * (self.alpha * self.cost), 1.0) * neg_mask;
        pos.sum().reshape([1]) / pos_count.max(1) as f64
            + neg.sum().reshape([1]) / neg_count.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn hand_checked_pairs() {
        // Rows (1,0), (0.6,0.8) of class 0 and (0,1) of class 1.
        let e = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.6, 0.8, 0.0, 1.0], [3, 2]),
            &Device::default(),
        );
        let loss = BinomialDeviance::new(&BinomialDevianceConfig::default());
        let value = loss.forward(e, &[0, 0, 1]).into_scalar::<f32>() as f64;
        let sp = |x: f64| (1.0 + x.exp()).ln();
        // Positive pairs (0,1),(1,0): s = 0.6. Negative pairs (0,2),(2,0): s = 0; (1,2),(2,1): s = 0.8.
        let pos = sp(-2.0 * (0.6 - 0.5));
        let neg = (2.0 * sp(50.0 * (0.0 - 0.5)) + 2.0 * sp(50.0 * (0.8 - 0.5))) / 4.0;
        assert!(
            (value - (pos + neg)).abs() < 1e-4,
            "{value} vs {}",
            pos + neg
        );
    }
}
