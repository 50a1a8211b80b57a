//! Clustering metrics: k-means with k the number of classes, as faiss runs it for
//! pytorch-metric-learning's AccuracyCalculator (`faiss.Kmeans(d, k, niter=20)`: k distinct
//! points drawn as the initial centroids, Lloyd iterations with exact assignment, an empty
//! cluster re-seeded by splitting a large one, one run), then NMI (arithmetic normalisation, as
//! scikit-learn's default) and the pairwise F1 of the clustering (Oh Song et al., CVPR 2016).
//!
//! Assignment is the costly part (n x k x d per iteration): it runs as blocked matrix products
//! (the k-NN's kernel), a block of points against every centroid, in parallel over blocks and
//! reduced in point order, so a seed gives the same clustering at any thread count.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::knn::dot_block;
use super::retrieval::Metrics;

/// Lloyd iterations at most (AccuracyCalculator's `niter=20`); they stop early once no point
/// changes cluster.
pub const MAX_ITERATIONS: usize = 20;
/// Points per assignment block: a block holds BLOCK x k products.
const BLOCK: usize = 256;
/// faiss's perturbation of a split centroid (1 / 1024).
const SPLIT: f32 = 1.0 / 1024.0;

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

/// A finished k-means: each row's cluster, the objective and the iterations it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub assignment: Vec<usize>,
    /// Sum over rows of the squared distance to their centroid.
    pub inertia: f64,
    pub iterations: usize,
}

/// k-means of the rows of `data` (`[n, dim]`) into `k` clusters, seeded by `seed`.
pub fn kmeans(data: &[f32], dim: usize, k: usize, seed: u64) -> Clustering {
    let n = data.len() / dim;
    if n == 0 || k <= 1 {
        return Clustering {
            assignment: vec![0; n],
            inertia: inertia_of_one(data, dim),
            iterations: 0,
        };
    }
    let k = k.min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centroids: Vec<f32> = sample(&mut rng, n, k)
        .into_iter()
        .flat_map(|i| data[i * dim..(i + 1) * dim].to_vec())
        .collect();
    let mut previous: Option<Vec<usize>> = None;
    let mut iterations = 0;
    loop {
        let (assignment, inertia) = assign(data, dim, &centroids);
        let converged = previous.as_ref() == Some(&assignment);
        if converged || iterations == MAX_ITERATIONS {
            return Clustering {
                assignment,
                inertia,
                iterations,
            };
        }
        centroids = update(data, dim, k, &assignment);
        previous = Some(assignment);
        iterations += 1;
    }
}

fn inertia_of_one(data: &[f32], dim: usize) -> f64 {
    let n = data.len() / dim;
    if n == 0 {
        return 0.0;
    }
    let mean: Vec<f64> = (0..dim)
        .map(|j| (0..n).map(|i| f64::from(data[i * dim + j])).sum::<f64>() / n as f64)
        .collect();
    data.chunks(dim)
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&x, m)| (f64::from(x) - m).powi(2))
                .sum::<f64>()
        })
        .sum()
}

/// Each row's nearest centroid (ties to the lower index) and the summed squared distances.
fn assign(data: &[f32], dim: usize, centroids: &[f32]) -> (Vec<usize>, f64) {
    let k = centroids.len() / dim;
    let norms: Vec<f32> = centroids
        .chunks(dim)
        .map(|c| c.iter().map(|v| v * v).sum())
        .collect();
    let blocks: Vec<Vec<(usize, f32)>> = data
        .par_chunks(BLOCK * dim)
        .map(|block| {
            let rows = block.len() / dim;
            let mut products = vec![0f32; rows * k];
            dot_block(block, centroids, dim, &mut products);
            (0..rows)
                .map(|r| {
                    let x = &block[r * dim..(r + 1) * dim];
                    let own: f32 = x.iter().map(|v| v * v).sum();
                    let row = &products[r * k..(r + 1) * k];
                    let (best, score) = (row.iter().zip(&norms))
                        .map(|(p, c)| c - 2.0 * p)
                        .enumerate()
                        .fold(
                            (0, f32::INFINITY),
                            |best, (c, d)| if d < best.1 { (c, d) } else { best },
                        );
                    (best, (own + score).max(0.0))
                })
                .collect()
        })
        .collect();
    let assigned: Vec<(usize, f32)> = blocks.into_iter().flatten().collect();
    let inertia = assigned.iter().map(|&(_, d)| f64::from(d)).sum();
    (assigned.into_iter().map(|(c, _)| c).collect(), inertia)
}

/// The mean of each cluster's rows; an empty cluster takes half of the largest (its centroid
/// copied and both nudged apart, as faiss splits).
fn update(data: &[f32], dim: usize, k: usize, assignment: &[usize]) -> Vec<f32> {
    let mut sums = vec![0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (row, &c) in data.chunks(dim).zip(assignment) {
        counts[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let mut centroids: Vec<f32> = (0..k * dim)
        .map(|i| match counts[i / dim] {
            0 => 0.0,
            count => (sums[i] / count as f64) as f32,
        })
        .collect();
    for empty in 0..k {
        if counts[empty] > 0 {
            continue;
        }
        let largest = (0..k)
            .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
            .expect("k >= 1");
        for j in 0..dim {
            let v = centroids[largest * dim + j];
            let (a, b) = if j % 2 == 0 {
                (1.0 + SPLIT, 1.0 - SPLIT)
            } else {
                (1.0 - SPLIT, 1.0 + SPLIT)
            };
            centroids[empty * dim + j] = v * a;
            centroids[largest * dim + j] = v * b;
        }
        counts[empty] = counts[largest] / 2;
        counts[largest] -= counts[empty];
    }
    centroids
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

    #[test]
    fn an_empty_cluster_takes_half_of_the_largest() {
        // Three points, two identical: seeding on the pair leaves one cluster empty.
        let data = [0.0f32, 0.0, 0.0, 0.0, 5.0, 5.0];
        let centroids = update(&data, 2, 3, &[0, 0, 1]);
        assert_eq!(&centroids[2..4], &[5.0, 5.0]);
        // Cluster 2 is empty: it copies cluster 0 (the largest), nudged.
        let (a, b) = (&centroids[0..2], &centroids[4..6]);
        assert_eq!(a, &[0.0, 0.0]);
        assert_eq!(b, &[0.0, 0.0]);
        let data = [1.0f32, 1.0, 1.0, 1.0, 5.0, 5.0];
        let centroids = update(&data, 2, 3, &[0, 0, 1]);
        assert!(
            centroids[4] > centroids[0] && centroids[5] < centroids[1],
            "{centroids:?}"
        );
    }
}
