//! Normalized softmax loss (Zhai & Wu, "Classification is a Strong Baseline for Deep Metric
//! Learning", BMVC 2019), as pytorch-metric-learning's `NormalizedSoftmaxLoss`: cross-entropy
//! over cosines between the embedding and one learnable weight per class, divided by a
//! temperature.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::pairs::{class_vectors, cosines, group_rows, mask};
use crate::model::layers::ParamInit;

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizedSoftmaxConfig {
    pub temperature: f64,
    /// Adam learning rate of the class weights.
    pub proxy_lr: f64,
}

impl Default for NormalizedSoftmaxConfig {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            proxy_lr: 1e-2,
        }
    }
}

/// The normalized softmax loss and its class weights.
#[derive(Module, Debug)]
pub struct NormalizedSoftmax {
    /// `[P, classes, d]`: class weights per group.
    pub weights: Param<Tensor<3>>,
    pub temperature: f64,
}

impl NormalizedSoftmax {
    pub fn new(
        config: &NormalizedSoftmaxConfig,
        groups: usize,
        classes: usize,
        size: usize,
        init: &mut ParamInit,
    ) -> Self {
        Self {
            weights: class_vectors(init, groups, classes, size),
            temperature: config.temperature,
        }
    }

    /// The class weights of `group`: `[classes, d]`.
    pub fn group_weights(&self, group: usize) -> Tensor<2> {
        group_rows(&self.weights.val(), group)
    }

    /// `embedding`: `[n, d]`; `weights`: `[classes, d]` (both normalised here).
    pub fn forward(&self, embedding: Tensor<2>, weights: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let device = embedding.device();
        let [classes, _] = weights.dims();
        let logits = cosines(embedding, weights) / self.temperature;
        let target = mask(labels.len(), classes, &device, |i, c| labels[i] == c).float();
        let log_probability = (log_softmax(logits, 1) * target).sum_dim(1); // [n, 1]
        -log_probability.mean().reshape([1])
    }
}
