//! Multi-similarity loss with its miner (Wang et al., CVPR 2019), as pytorch-metric-learning's
//! `MultiSimilarityLoss` + `MultiSimilarityMiner`: cosine similarities S; the miner keeps a
//! positive pair if S_ap - epsilon < the anchor's largest negative similarity, a negative pair
//! if S_an + epsilon > its smallest positive similarity; then per anchor
//!   1/alpha log(1 + sum_P exp(-alpha (S - base))) + 1/beta log(1 + sum_N exp(beta (S - base))),
//! averaged over the batch.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::pairs::{cosines, host_values, logsumexp_add_one, mask};

/// Hyper-parameters (the paper's and pytorch-metric-learning's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiSimilarityConfig {
    pub alpha: f64,
    pub beta: f64,
    pub base: f64,
    /// Miner margin; pairs are mined when `mine` is true.
    pub epsilon: f64,
    pub mine: bool,
}

impl Default for MultiSimilarityConfig {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            beta: 50.0,
            base: 0.5,
            epsilon: 0.1,
            mine: true,
        }
    }
}

/// The multi-similarity loss.
#[derive(Module, Debug)]
pub struct MultiSimilarity {
    pub alpha: f64,
    pub beta: f64,
    pub base: f64,
    pub epsilon: f64,
    pub mine: bool,
}

impl MultiSimilarity {
    pub fn new(config: &MultiSimilarityConfig) -> Self {
        Self {
            alpha: config.alpha,
            beta: config.beta,
            base: config.base,
            epsilon: config.epsilon,
            mine: config.mine,
        }
    }

    /// `embedding`: `[n, d]` (normalised here). Returns a one-element tensor.
    pub fn forward(&self, embedding: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let n = labels.len();
        let device = embedding.device();
        let similarity = cosines(embedding.clone(), embedding); // [n, n]
        let s = host_values(&similarity);
        let positive = |i: usize, j: usize| i != j && labels[i] == labels[j];
        let negative = |i: usize, j: usize| labels[i] != labels[j];
        let (keep_pos, keep_neg) = if self.mine {
            let eps = self.epsilon as f32;
            let hardest_neg: Vec<f32> = (0..n)
                .map(|i| {
                    (0..n)
                        .filter(|&j| negative(i, j))
                        .map(|j| s[i * n + j])
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .collect();
            let easiest_pos: Vec<f32> = (0..n)
                .map(|i| {
                    (0..n)
                        .filter(|&j| positive(i, j))
                        .map(|j| s[i * n + j])
                        .fold(f32::INFINITY, f32::min)
                })
                .collect();
            (
                mask(n, n, &device, |i, j| {
                    positive(i, j) && s[i * n + j] - eps < hardest_neg[i]
                }),
                mask(n, n, &device, |i, j| {
                    negative(i, j) && s[i * n + j] + eps > easiest_pos[i]
                }),
            )
        } else {
            (mask(n, n, &device, positive), mask(n, n, &device, negative))
        };
        let pos_term =
            logsumexp_add_one((-similarity.clone() + self.base) * self.alpha, keep_pos, 1)
                / self.alpha;
        let neg_term =
            logsumexp_add_one((similarity - self.base) * self.beta, keep_neg, 1) / self.beta;
        (pos_term + neg_term).mean().reshape([1])
    }
}
