//! Triplet margin loss with semi-hard mining (Schroff et al., "FaceNet", CVPR 2015), as
//! pytorch-metric-learning's `TripletMarginLoss` with a `TripletMarginMiner("semihard")`:
//! among all triplets keep those with 0 < d_an - d_ap <= miner_margin, then
//! relu(d_ap - d_an + margin) averaged over the non-zero terms.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::contrastive::average_non_zero;
use super::pairs::{host_values, pair_distances};
use crate::model::layers::l2_normalize;

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TripletConfig {
    /// Margin of the loss (FaceNet's alpha).
    pub margin: f64,
    /// Margin of the semi-hard miner.
    pub miner_margin: f64,
}

impl Default for TripletConfig {
    fn default() -> Self {
        Self {
            margin: 0.2,
            miner_margin: 0.2,
        }
    }
}

/// The triplet loss with its semi-hard miner.
#[derive(Module, Debug)]
pub struct Triplet {
    pub margin: f64,
    pub miner_margin: f64,
}

impl Triplet {
    pub fn new(config: &TripletConfig) -> Self {
        Self {
            margin: config.margin,
            miner_margin: config.miner_margin,
        }
    }

    /// `embedding`: `[n, d]` (normalised here). Returns a one-element tensor.
    pub fn forward(&self, embedding: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let embedding = l2_normalize(embedding);
        let distances = distance_matrix(&embedding);
        let n = labels.len();
        let (mut anchors, mut positives, mut negatives) = (vec![], vec![], vec![]);
        for a in 0..n {
            for p in (0..n).filter(|&p| p != a && labels[p] == labels[a]) {
                for neg in (0..n).filter(|&x| labels[x] != labels[a]) {
                    let gap = distances[a * n + neg] - distances[a * n + p];
                    if gap > 0.0 && gap <= self.miner_margin {
                        anchors.push(a);
                        positives.push(p);
                        negatives.push(neg);
                    }
                }
            }
        }
        if anchors.is_empty() {
            return (embedding.sum() * 0.0).reshape([1]);
        }
        let d_ap = pair_distances(&embedding, &anchors, &positives);
        let d_an = pair_distances(&embedding, &anchors, &negatives);
        average_non_zero(relu(d_ap - d_an + self.margin))
    }
}

/// All pairwise Euclidean distances of the rows of `embedding`, read back for mining (f64).
pub fn distance_matrix(embedding: &Tensor<2>) -> Vec<f64> {
    let [n, d] = embedding.dims();
    let values = host_values(embedding);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..d)
                .map(|k| f64::from(values[i * d + k] - values[j * d + k]).powi(2))
                .sum::<f64>()
                .sqrt();
        }
    }
    out
}
