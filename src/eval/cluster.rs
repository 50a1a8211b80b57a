//! Clustering metrics: k-means with k the number of classes ([`kmeans`], as faiss runs it for
//! pytorch-metric-learning's AccuracyCalculator), then NMI (arithmetic normalisation, as
//! scikit-learn's default) and the pairwise F1 of the clustering (Oh Song et al., CVPR 2016).

use std::collections::BTreeMap;

use super::kmeans::kmeans;
use super::retrieval::Metrics;

/// `nmi` and `f1` of k-means on `embeddings` (`[n, dim]`) with k = the number of classes.
pub fn clustering_metrics(embeddings: &[f32], dim: usize, labels: &[usize], seed: u64) -> Metrics {
    let classes = {
        let mut distinct: Vec<usize> = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len()
    };
    let clusters = kmeans(embeddings, dim, classes, seed).assignment;
    Metrics::from([
        ("nmi".to_string(), nmi(&clusters, labels)),
        ("f1".to_string(), pairwise_f1(&clusters, labels)),
    ])
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
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::eval::kmeans::MAX_ITERATIONS;

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

    /// `classes` blobs of `per_class` points in `dim` dimensions, well apart.
    fn blobs(classes: usize, per_class: usize, dim: usize) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let centres: Vec<f32> = (0..classes * dim)
            .map(|_| rand::Rng::random_range(&mut rng, -10.0..10.0))
            .collect();
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for _ in 0..per_class {
                data.extend(
                    (0..dim).map(|j| {
                        centres[c * dim + j] + rand::Rng::random_range(&mut rng, -0.5..0.5)
                    }),
                );
                labels.push(c);
            }
        }
        (data, labels)
    }

    #[test]
    fn kmeans_finds_blobs_and_is_deterministic_for_a_seed() {
        let (data, labels) = blobs(4, 30, 2);
        // Four blobs: random seeding can put two first centroids in one blob; the clustering
        // is still far better than chance, and the same for the same seed at any thread count.
        let m = clustering_metrics(&data, 2, &labels, 0);
        assert!(m["nmi"] > 0.7, "{m:?}");
        let once = kmeans(&data, 2, 4, 5);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(pool.install(|| kmeans(&data, 2, 4, 5)), once);
        assert!(once.iterations <= MAX_ITERATIONS);
        // Many classes of few points (the retrieval sets' shape): nearly every blob found.
        let (data, labels) = blobs(200, 5, 16);
        let m = clustering_metrics(&data, 16, &labels, 3);
        assert!(m["nmi"] > 0.95, "{m:?}");
    }
}
