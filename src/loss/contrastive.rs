//! Contrastive loss (Hadsell et al., CVPR 2006) over all pairs of a batch, as
//! pytorch-metric-learning's `ContrastiveLoss` computes it: Euclidean distances of
//! L2-normalised embeddings, relu(d - pos_margin) for positive pairs and relu(neg_margin - d)
//! for negative pairs, each averaged over its non-zero terms.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::pairs::pair_distances;
use crate::model::layers::l2_normalize;

/// Hyper-parameters (pytorch-metric-learning's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContrastiveConfig {
    pub pos_margin: f64,
    pub neg_margin: f64,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            pos_margin: 0.0,
            neg_margin: 1.0,
        }
    }
}

/// The contrastive loss.
#[derive(Module, Debug)]
pub struct Contrastive {
    pub pos_margin: f64,
    pub neg_margin: f64,
}

impl Contrastive {
    pub fn new(config: &ContrastiveConfig) -> Self {
        Self {
            pos_margin: config.pos_margin,
            neg_margin: config.neg_margin,
        }
    }

    /// `embedding`: `[n, d]` (normalised here). Returns a one-element tensor.
    pub fn forward(&self, embedding: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let embedding = l2_normalize(embedding);
        let n = labels.len();
        let (mut pos, mut neg) = ((vec![], vec![]), (vec![], vec![]));
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let side = if labels[i] == labels[j] {
                    &mut pos
                } else {
                    &mut neg
                };
                side.0.push(i);
                side.1.push(j);
            }
        }
        let zero = (embedding.clone().sum() * 0.0).reshape([1]);
        let pos_loss = if pos.0.is_empty() {
            zero.clone()
        } else {
            average_non_zero(relu(
                pair_distances(&embedding, &pos.0, &pos.1) - self.pos_margin,
            ))
        };
        let neg_loss = if neg.0.is_empty() {
            zero
        } else {
            average_non_zero(relu(
                -pair_distances(&embedding, &neg.0, &neg.1) + self.neg_margin,
            ))
        };
        pos_loss + neg_loss
    }
}

/// Mean over the strictly positive entries (0 when there is none): pytorch-metric-learning's
/// `AvgNonZeroReducer`.
pub fn average_non_zero(losses: Tensor<1>) -> Tensor<1> {
    let count = losses.clone().greater_elem(0.0).float().sum();
    losses.sum().reshape([1]) / count.clamp_min(1.0).reshape([1])
}
