//! Clustering metrics: k-means++ (seeded, several restarts, the lowest inertia kept) with k
//! the number of classes, then NMI (arithmetic normalisation, as scikit-learn's default) and
//! the pairwise F1 of the clustering (Oh Song et al., CVPR 2016).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::retrieval::Metrics;

/// Restarts of k-means; the lowest inertia wins.
const RESTARTS: u64 = 3;
const MAX_ITERATIONS: usize = 100;

/// `nmi` and `f1` of k-means on `embeddings` (`[n, dim]`) with k = the number of classes.
pub fn clustering_metrics(embeddings: &[f32], dim: usize, labels: &[usize], seed: u64) -> Metrics {
    let classes = {
        let mut distinct: Vec<usize> = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len()
    };
    let clusters = kmeans(embeddings, dim, classes, seed);
    Metrics::from([
        ("nmi".to_string(), nmi(&clusters, labels)),
        ("f1".to_string(), pairwise_f1(&clusters, labels)),
    ])
}

/// Cluster index of each row: k-means++ initialisation and Lloyd iterations, best of a few
/// seeded restarts.
pub fn kmeans(data: &[f32], dim: usize, k: usize, seed: u64) -> Vec<usize> {
    let n = data.len() / dim;
    if n == 0 || k <= 1 {
        return vec![0; n];
    }
    let k = k.min(n);
    (0..RESTARTS)
        .map(|restart| lloyd(data, dim, k, seed.wrapping_add(restart)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(assignment, _)| assignment)
        .expect("at least one restart")
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

fn lloyd(data: &[f32], dim: usize, k: usize, seed: u64) -> (Vec<usize>, f64) {
    let n = data.len() / dim;
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // k-means++: each next centre drawn with probability proportional to D(x)^2.
    let mut centres: Vec<f32> = row(rng.random_range(0..n)).to_vec();
    let mut nearest: Vec<f64> = (0..n)
        .map(|i| squared_distance(row(i), &centres[..dim]))
        .collect();
    while centres.len() / dim < k {
        let total: f64 = nearest.iter().sum();
        let next = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            nearest
                .iter()
                .position(|&d| {
                    target -= d;
                    target <= 0.0
                })
                .unwrap_or(n - 1)
        } else {
            rng.random_range(0..n)
        };
        let start = centres.len();
        centres.extend_from_slice(row(next));
        let centre = centres[start..].to_vec();
        nearest
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, d)| *d = d.min(squared_distance(row(i), &centre)));
    }
    let mut assignment = vec![0usize; n];
    let mut inertia = f64::INFINITY;
    for _ in 0..MAX_ITERATIONS {
        let assigned: Vec<(usize, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                (0..k)
                    .map(|c| {
                        (
                            c,
                            squared_distance(row(i), &centres[c * dim..(c + 1) * dim]),
                        )
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("k >= 1")
            })
            .collect();
        let changed = assigned.iter().zip(&assignment).any(|(a, &b)| a.0 != b);
        assignment = assigned.iter().map(|a| a.0).collect();
        inertia = assigned.iter().map(|a| a.1).sum();
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &c) in assignment.iter().enumerate() {
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                *s += f64::from(v);
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..dim {
                    centres[c * dim + j] = (sums[c * dim + j] / counts[c] as f64) as f32;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (assignment, inertia)
}

/// Joint counts of (a, b) pairs, and the counts of each a and of each b.
struct Contingency {
    joint: BTreeMap<(usize, usize), usize>,
    left: BTreeMap<usize, usize>,
    right: BTreeMap<usize, usize>,
}

fn contingency(a: &[usize], b: &[usize]) -> Contingency {
    let mut joint = BTreeMap::new();
    let mut left = BTreeMap::new();
    let mut right = BTreeMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_insert(0) += 1;
        *left.entry(x).or_insert(0) += 1;
        *right.entry(y).or_insert(0) += 1;
    }
    Contingency { joint, left, right }
}

/// Normalised mutual information, MI / mean(H(a), H(b)); 1 when both are one cluster.
pub fn nmi(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len() as f64;
    let Contingency { joint, left, right } = contingency(a, b);
    let entropy = |counts: &BTreeMap<usize, usize>| -> f64 {
        counts
            .values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.ln()
            })
            .sum()
    };
    let (ha, hb) = (entropy(&left), entropy(&right));
    if ha == 0.0 && hb == 0.0 {
        return 1.0;
    }
    let mi: f64 = joint
        .iter()
        .map(|(&(x, y), &c)| {
            let p = c as f64 / n;
            p * (p * n * n / (left[&x] as f64 * right[&y] as f64)).ln()
        })
        .sum();
    (mi / ((ha + hb) / 2.0)).clamp(0.0, 1.0)
}

/// Pairwise F1 of a clustering against the labels: precision and recall over pairs of items
/// put in one cluster versus pairs sharing a class.
pub fn pairwise_f1(clusters: &[usize], labels: &[usize]) -> f64 {
    let pairs = |c: usize| (c * c.saturating_sub(1) / 2) as f64;
    let Contingency {
        joint,
        left: by_cluster,
        right: by_class,
    } = contingency(clusters, labels);
    let true_positive: f64 = joint.values().map(|&c| pairs(c)).sum();
    let predicted: f64 = by_cluster.values().map(|&c| pairs(c)).sum();
    let actual: f64 = by_class.values().map(|&c| pairs(c)).sum();
    if predicted == 0.0 || actual == 0.0 || true_positive == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (true_positive / predicted, true_positive / actual);
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_matches_hand_computed_values() {
        assert!((nmi(&[0, 0, 1, 1], &[5, 5, 7, 7]) - 1.0).abs() < 1e-12);
        // Independent: a = [0,0,1,1], b = [0,1,0,1]: MI = 0.
        assert!(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]).abs() < 1e-12);
        // a = [0,0,0,1], b = [0,0,1,1]: 0.3437110 (scikit-learn, arithmetic normalisation).
        let expected = {
            let h = |ps: &[f64]| -ps.iter().map(|p| p * p.ln()).sum::<f64>();
            let ha = h(&[0.75, 0.25]);
            let hb = h(&[0.5, 0.5]);
            let mi = 0.5 * (0.5f64 / (0.75 * 0.5)).ln()
                + 0.25 * (0.25f64 / (0.75 * 0.5)).ln()
                + 0.25 * (0.25f64 / (0.25 * 0.5)).ln();
            mi / ((ha + hb) / 2.0)
        };
        assert!((nmi(&[0, 0, 0, 1], &[0, 0, 1, 1]) - expected).abs() < 1e-12);
        assert!((expected - 0.343_711_0).abs() < 1e-6);
    }

    #[test]
    fn pairwise_f1_by_hand() {
        // Clusters {0,1,2}, {3}; classes {0,1}, {2,3}: TP = 1 (0-1), predicted 3, actual 2.
        let f1 = pairwise_f1(&[0, 0, 0, 1], &[0, 0, 1, 1]);
        let (p, r) = (1.0 / 3.0, 1.0 / 2.0);
        assert!((f1 - 2.0 * p * r / (p + r)).abs() < 1e-12);
        assert!((pairwise_f1(&[3, 3, 9, 9], &[0, 0, 1, 1]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn kmeans_separates_well_separated_blobs() {
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for c in 0..4 {
            for i in 0..30 {
                let jitter = (i as f32 * 0.618).fract() * 0.1;
                data.extend_from_slice(&[c as f32 * 10.0 + jitter, (c % 2) as f32 * 10.0 - jitter]);
                labels.push(c);
            }
        }
        let m = clustering_metrics(&data, 2, &labels, 0);
        assert!((m["nmi"] - 1.0).abs() < 1e-12, "{m:?}");
        assert!((m["f1"] - 1.0).abs() < 1e-12);
        assert_eq!(kmeans(&data, 2, 4, 5), kmeans(&data, 2, 4, 5));
    }
}
