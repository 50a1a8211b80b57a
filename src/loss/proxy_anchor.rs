//! Proxy-Anchor loss (Kim et al., CVPR 2020), as pytorch-metric-learning's `ProxyAnchorLoss`:
//! one learnable proxy per class; with cosines s between embeddings and proxies,
//!   1/|P+| sum_{p in P+} log(1 + sum_{x of p} exp(-alpha (s - margin)))
//!   + 1/|P|  sum_{p}        log(1 + sum_{x not of p} exp(alpha (s + margin))),
//!
//! with P+ the classes present in the batch.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::pairs::{class_vectors, cosines, group_rows, logsumexp_add_one, mask};
use crate::model::layers::ParamInit;

/// Hyper-parameters (the paper's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyAnchorConfig {
    pub margin: f64,
    pub alpha: f64,
    /// Adam learning rate of the proxies (the paper uses 100x the model's).
    pub proxy_lr: f64,
}

impl Default for ProxyAnchorConfig {
    fn default() -> Self {
        Self {
            margin: 0.1,
            alpha: 32.0,
            proxy_lr: 1e-2,
        }
    }
}

/// The Proxy-Anchor loss and its proxies.
#[derive(Module, Debug)]
pub struct ProxyAnchor {
    /// `[P, classes, d]`: proxies per group.
    pub proxies: Param<Tensor<3>>,
    pub margin: f64,
    pub alpha: f64,
}

impl ProxyAnchor {
    /// Proxies drawn uniformly in +-1/sqrt(d) (only their direction matters).
    pub fn new(
        config: &ProxyAnchorConfig,
        groups: usize,
        classes: usize,
        size: usize,
        init: &mut ParamInit,
    ) -> Self {
        Self {
            proxies: class_vectors(init, groups, classes, size),
            margin: config.margin,
            alpha: config.alpha,
        }
    }

    /// The proxies of `group`: `[classes, d]`.
    pub fn group_proxies(&self, group: usize) -> Tensor<2> {
        group_rows(&self.proxies.val(), group)
    }

    /// `embedding`: `[n, d]`; `proxies`: `[classes, d]` (both normalised here).
    pub fn forward(&self, embedding: Tensor<2>, proxies: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let device = embedding.device();
        let [classes, _] = proxies.dims();
        let n = labels.len();
        let cosine = cosines(embedding, proxies); // [n, classes]
        let pos_mask = mask(n, classes, &device, |i, c| labels[i] == c);
        let neg_mask = mask(n, classes, &device, |i, c| labels[i] != c);
        let present = (0..classes).filter(|&c| labels.contains(&c)).count();
        let pos = logsumexp_add_one((-cosine.clone() + self.margin) * self.alpha, pos_mask, 0);
        let neg = logsumexp_add_one((cosine + self.margin) * self.alpha, neg_mask, 0);
        pos.sum().reshape([1]) / present.max(1) as f64 + neg.sum().reshape([1]) / classes as f64
    }
}
