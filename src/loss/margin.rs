//! Margin loss with distance-weighted sampling: "Sampling Matters in Deep Embedding Learning"
//! (Wu et al., ICCV 2017), as the A-grouping authors use it.
//!
//! For each anchor: a random positive, and a negative drawn with probability proportional to
//! the inverse of the density of distances between points on the unit sphere,
//! q(d)^-1 = d^(2-n) * (1 - d^2/4)^((3-n)/2), with d clipped below at `cutoff`. Then
//!   loss = sum(relu(d_ap - beta + alpha) + relu(beta - d_an + alpha)) / count,
//! with beta a learnable boundary per class (and per group here). The authors count the
//! triplets with any active term (`criteria/margin.py:70`, an OR of two bool tensors); Wu et
//! al. and pytorch-metric-learning count the active terms: [`MarginNormalization`].

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::pairs::host_values;
use crate::model::layers::l2_normalize;

/// Hyper-parameters of the margin loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarginConfig {
    /// Margin alpha around the boundary.
    pub alpha: f64,
    /// Initial value of every beta.
    pub beta_init: f64,
    /// Adam learning rate of the betas.
    pub beta_lr: f64,
    /// Lower distance cutoff of the sampling weights.
    pub cutoff: f64,
    /// What the summed loss is divided by.
    #[serde(skip_serializing_if = "MarginNormalization::is_default")]
    pub normalization: MarginNormalization,
}

/// The denominator of the margin loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarginNormalization {
    /// Triplets with a positive or a negative term above zero (the authors' code).
    #[default]
    ActiveTriplets,
    /// Terms above zero, positive and negative counted apart (Wu et al.,
    /// pytorch-metric-learning's MarginLoss); agml's count before semantics 5.
    ActiveTerms,
}

impl MarginNormalization {
    // The default stays out of the cell hash (semantics 5 made it the default).
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for MarginConfig {
    /// The authors' values (CUB-200-2011).
    fn default() -> Self {
        Self {
            alpha: 0.2,
            beta_init: 1.2,
            beta_lr: 5e-5,
            cutoff: 0.5,
            normalization: MarginNormalization::default(),
        }
    }
}

/// The margin loss and its learnable boundaries.
#[derive(Module, Debug)]
pub struct MarginLoss {
    /// `[P, classes]`: one boundary per group and training class.
    pub beta: Param<Tensor<2>>,
    pub alpha: f64,
    pub cutoff: f64,
    #[module(skip)]
    pub normalization: MarginNormalization,
}

/// Anchor, positive and negative indices into a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triplet {
    pub anchor: usize,
    pub positive: usize,
    pub negative: usize,
}

impl MarginLoss {
    /// Boundaries for `groups` groups and `classes` training classes.
    pub fn new(config: &MarginConfig, groups: usize, classes: usize, device: &Device) -> Self {
        let beta = vec![config.beta_init as f32; groups * classes];
        Self {
            beta: Param::from_tensor(Tensor::from_data(
                TensorData::new(beta, [groups, classes]),
                device,
            )),
            alpha: config.alpha,
            cutoff: config.cutoff,
            normalization: config.normalization,
        }
    }

    /// The loss of one group: `embedding` `[n, d]` (normalised here), `labels` the dense
    /// training class of each row; triplets are sampled with `rng`. A one-element tensor.
    pub fn forward_group(
        &self,
        group: usize,
        embedding: Tensor<2>,
        labels: &[usize],
        rng: &mut impl Rng,
    ) -> Tensor<1> {
        let embedding = l2_normalize(embedding);
        let [n, d] = embedding.dims();
        let values = host_values(&embedding);
        let rows: Vec<&[f32]> = (0..n).map(|i| &values[i * d..(i + 1) * d]).collect();
        let triplets = sample_triplets(&rows, labels, self.cutoff, rng);
        self.triplet_loss(embedding, self.group_beta(group), labels, &triplets)
    }

    /// [`Self::forward_group`] on given triplets instead of sampled ones.
    pub fn forward_group_on(
        &self,
        group: usize,
        embedding: Tensor<2>,
        labels: &[usize],
        triplets: &[Triplet],
    ) -> Tensor<1> {
        let embedding = l2_normalize(embedding);
        self.triplet_loss(embedding, self.group_beta(group), labels, triplets)
    }

    /// The boundaries of `group`: `[classes]`.
    pub fn group_beta(&self, group: usize) -> Tensor<1> {
        self.beta.val().narrow(0, group, 1).reshape([-1])
    }

    /// The loss of given triplets for one group: `embedding` `[n, d]`, `beta` `[classes]`.
    pub fn triplet_loss(
        &self,
        embedding: Tensor<2>,
        beta: Tensor<1>,
        labels: &[usize],
        triplets: &[Triplet],
    ) -> Tensor<1> {
        let device = embedding.device();
        if triplets.is_empty() {
            // No anchor has both a positive and a negative: nothing to learn from, and no NaN.
            return (embedding.sum() * 0.0).reshape([1]);
        }
        let index = |pick: fn(&Triplet) -> usize| {
            let ids: Vec<i64> = triplets.iter().map(|t| pick(t) as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [triplets.len()]), &device)
        };
        let anchors = embedding.clone().select(0, index(|t| t.anchor));
        let positives = embedding.clone().select(0, index(|t| t.positive));
        let negatives = embedding.select(0, index(|t| t.negative));
        let distance = |a: Tensor<2>, b: Tensor<2>| {
            (a - b)
                .square()
                .sum_dim(1)
                .add_scalar(1e-8)
                .sqrt()
                .reshape([-1])
        };
        let d_ap: Tensor<1> = distance(anchors.clone(), positives);
        let d_an: Tensor<1> = distance(anchors, negatives);
        let anchor_labels: Vec<i64> = triplets.iter().map(|t| labels[t.anchor] as i64).collect();
        let anchor_labels =
            Tensor::<1, Int>::from_data(TensorData::new(anchor_labels, [triplets.len()]), &device);
        let beta = beta.select(0, anchor_labels);
        let positive_loss = relu(d_ap - beta.clone() + self.alpha);
        let negative_loss = relu(beta - d_an + self.alpha);
        let (pos_active, neg_active) = (
            positive_loss.clone().greater_elem(0.0),
            negative_loss.clone().greater_elem(0.0),
        );
        let count = match self.normalization {
            MarginNormalization::ActiveTriplets => pos_active.bool_or(neg_active).float().sum(),
            MarginNormalization::ActiveTerms => pos_active.float().sum() + neg_active.float().sum(),
        };
        (positive_loss + negative_loss).sum() / count.clamp_min(1.0)
    }
}

/// One triplet per anchor that has a positive and a negative in the batch.
pub fn sample_triplets(
    rows: &[&[f32]],
    labels: &[usize],
    cutoff: f64,
    rng: &mut impl Rng,
) -> Vec<Triplet> {
    let n = rows.len();
    let dim = rows.first().map_or(0, |r| r.len());
    let mut triplets = Vec::with_capacity(n);
    for anchor in 0..n {
        let positives: Vec<usize> = (0..n)
            .filter(|&j| j != anchor && labels[j] == labels[anchor])
            .collect();
        let negatives: Vec<usize> = (0..n).filter(|&j| labels[j] != labels[anchor]).collect();
        if positives.is_empty() || negatives.is_empty() {
            continue;
        }
        let positive = positives[rng.random_range(0..positives.len())];
        let distances: Vec<f64> = negatives
            .iter()
            .map(|&j| euclidean(rows[anchor], rows[j]))
            .collect();
        let weights = negative_weights(&distances, dim, cutoff);
        let negative = negatives[draw(&weights, rng)];
        triplets.push(Triplet {
            anchor,
            positive,
            negative,
        });
    }
    triplets
}

/// Sampling weights of negatives at `distances` on the unit sphere in `dim` dimensions,
/// normalised to sum to 1 (uniform when every weight vanishes).
pub fn negative_weights(distances: &[f64], dim: usize, cutoff: f64) -> Vec<f64> {
    let dim = dim as f64;
    let log_weights: Vec<f64> = distances
        .iter()
        .map(|&d| {
            let d = d.max(cutoff);
            // 1 - d^2/4 reaches 0 at antipodes (d = 2): keep its log finite.
            (2.0 - dim) * d.ln() - (dim - 3.0) / 2.0 * (1.0 - 0.25 * d * d).max(1e-8).ln()
        })
        .collect();
    let max = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = log_weights.iter().map(|&w| (w - max).exp()).collect();
    let sum: f64 = weights.iter().sum();
    if !(sum.is_finite() && sum > 0.0) {
        return vec![1.0 / distances.len() as f64; distances.len()];
    }
    weights.into_iter().map(|w| w / sum).collect()
}

fn draw(weights: &[f64], rng: &mut impl Rng) -> usize {
    let mut target = rng.random::<f64>();
    for (i, &w) in weights.iter().enumerate() {
        if target < w {
            return i;
        }
        target -= w;
    }
    weights.len() - 1
}

fn euclidean(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn loss_counting(beta: f64, normalization: MarginNormalization) -> MarginLoss {
        let config = MarginConfig {
            beta_init: beta,
            normalization,
            ..MarginConfig::default()
        };
        MarginLoss::new(&config, 1, 2, &Device::default())
    }

    fn loss(beta: f64) -> MarginLoss {
        loss_counting(beta, MarginNormalization::ActiveTriplets)
    }

    fn tensor2(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), &Device::default())
    }

    #[test]
    fn triplet_loss_hand_checked() {
        // a = (1, 0), p = (0.6, 0.8), n = (0.8, 0.6): d_ap = sqrt(0.8), d_an = sqrt(0.4).
        let embedding = tensor2(vec![1.0, 0.0, 0.6, 0.8, 0.8, 0.6], [3, 2]);
        let labels = [0, 0, 1];
        let triplet = [Triplet {
            anchor: 0,
            positive: 1,
            negative: 2,
        }];
        let (d_ap, d_an) = (0.8f64.sqrt(), 0.4f64.sqrt());
        // beta 1.2: positive term 0 (0.894 < 1.0), negative term 1.2 - 0.632 + 0.2; one active.
        let l = loss(1.2);
        let value = l.triplet_loss(
            embedding.clone(),
            l.beta.val().reshape([-1]),
            &labels,
            &triplet,
        );
        let expected = 1.2 - d_an + 0.2;
        assert!((value.into_scalar::<f32>() as f64 - expected).abs() < 1e-5);
        // beta 0.8: both terms active in one triplet: the authors divide by the one triplet,
        // Wu et al. / pytorch-metric-learning by the two terms.
        let both = (d_ap - 0.8 + 0.2) + (0.8 - d_an + 0.2);
        for (normalization, count) in [
            (MarginNormalization::ActiveTriplets, 1.0),
            (MarginNormalization::ActiveTerms, 2.0),
        ] {
            let l = loss_counting(0.8, normalization);
            let value = l.triplet_loss(embedding.clone(), l.group_beta(0), &labels, &triplet);
            assert!((value.into_scalar::<f32>() as f64 - both / count).abs() < 1e-5);
        }
    }

    #[test]
    fn the_authors_count_triplets_with_any_active_term() {
        // Three triplets whose (positive, negative) terms are active as (yes, yes), (no, yes),
        // (yes, no): 3 active triplets, 4 active terms (the pos [1,0,2], neg [1,3,0]).
        // Points on a line; class 0 = {a0, p0, a1, p1, a2, p2}, class 1 = the negatives.
        // beta 0.3, alpha 0.2: a positive term is active beyond 0.1, a negative one within 0.5.
        let coords = [0.0, 0.5, 0.0, 0.05, 0.0, 0.5, 0.1, 0.3, 2.0];
        let embedding = tensor2(coords.iter().flat_map(|&x| [x, 1.0]).collect(), [9, 2]);
        let labels = [0, 0, 0, 0, 0, 0, 1, 1, 1];
        let t = |anchor, positive, negative| Triplet {
            anchor,
            positive,
            negative,
        };
        let triplets = [t(0, 1, 6), t(2, 3, 7), t(4, 5, 8)];
        let count = |normalization| {
            let l = loss_counting(0.3, normalization);
            l.triplet_loss(embedding.clone(), l.group_beta(0), &labels, &triplets)
                .into_scalar::<f32>() as f64
        };
        let (by_triplets, by_terms) = (
            count(MarginNormalization::ActiveTriplets),
            count(MarginNormalization::ActiveTerms),
        );
        assert!(
            (by_triplets / by_terms - 4.0 / 3.0).abs() < 1e-5,
            "{by_triplets} {by_terms}"
        );
    }

    #[test]
    fn no_valid_triplet_gives_zero_not_nan() {
        let l = loss(1.2);
        let embedding = tensor2(vec![1.0, 0.0, 0.0, 1.0], [2, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Two images of two classes: no anchor has a positive.
        let value = l
            .forward_group(0, embedding, &[0, 1], &mut rng)
            .into_scalar::<f32>();
        assert_eq!(value, 0.0);
    }

    #[test]
    fn negative_weights_follow_the_inverse_sphere_density() {
        // dim 4: log w = -2 ln d - 0.5 ln(1 - d^2/4).
        let distances = [0.3, 0.5, 1.0, 1.5];
        let w = negative_weights(&distances, 4, 0.5);
        let raw = |d: f64| d.powf(-2.0) * (1.0 - d * d / 4.0).powf(-0.5);
        let z: f64 = [0.5, 0.5, 1.0, 1.5].iter().map(|&d| raw(d)).sum();
        for (got, d) in w.iter().zip([0.5, 0.5, 1.0, 1.5]) {
            assert!((got - raw(d) / z).abs() < 1e-12);
        }
        // The cutoff makes 0.3 and 0.5 equally likely.
        assert_eq!(w[0], w[1]);
    }

    #[test]
    fn sampled_triplets_respect_labels() {
        let rows: Vec<Vec<f32>> = (0..8)
            .map(|i| {
                let angle = i as f32 * 0.7;
                vec![angle.cos(), angle.sin()]
            })
            .collect();
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let labels = [0, 0, 1, 1, 2, 2, 3, 3];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let triplets = sample_triplets(&rows, &labels, 0.5, &mut rng);
        assert_eq!(triplets.len(), 8);
        for t in triplets {
            assert_ne!(t.anchor, t.positive);
            assert_eq!(labels[t.anchor], labels[t.positive]);
            assert_ne!(labels[t.anchor], labels[t.negative]);
        }
    }
}
