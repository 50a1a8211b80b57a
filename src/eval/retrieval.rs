//! Leave-one-out retrieval metrics over exact Euclidean k-nearest neighbours: Recall@K,
//! R-Precision and MAP@R (Musgrave et al., "A Metric Learning Reality Check", 2020).
//!
//! Every item is a query against all others. A query whose class has no other item is left
//! out of every metric, as pytorch-metric-learning's AccuracyCalculator does.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rayon::prelude::*;

/// Metric name -> value in [0, 1] (`recall@1`, `map@r`, `r_precision`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// Metrics of `embeddings` (`[n, dim]` row-major) with `labels`, Recall at each of `ks`.
pub fn retrieval_metrics(
    embeddings: &[f32],
    dim: usize,
    labels: &[usize],
    ks: &[usize],
) -> Metrics {
    let n = labels.len();
    assert_eq!(embeddings.len(), n * dim, "embeddings must be [n, dim]");
    let mut class_sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for &l in labels {
        *class_sizes.entry(l).or_default() += 1;
    }
    let max_k = ks.iter().copied().max().unwrap_or(1);
    let norms: Vec<f32> = embeddings.chunks(dim).map(|r| dot(r, r)).collect();

    // Per query: (recall hits per K, r-precision, average precision at R); None if left out.
    let per_query: Vec<Option<(Vec<bool>, f64, f64)>> = (0..n)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(n),
            |row: &mut Vec<(f32, usize)>, q| {
                let r = class_sizes[&labels[q]] - 1;
                if r == 0 {
                    return None;
                }
                let query = &embeddings[q * dim..(q + 1) * dim];
                row.clear();
                row.extend((0..n).filter(|&j| j != q).map(|j| {
                    let reference = &embeddings[j * dim..(j + 1) * dim];
                    (norms[q] + norms[j] - 2.0 * dot(query, reference), j)
                }));
                let depth = max_k.max(r).min(row.len());
                let by_distance = |a: &(f32, usize), b: &(f32, usize)| {
                    a.0.partial_cmp(&b.0)
                        .unwrap_or(Ordering::Equal)
                        .then(a.1.cmp(&b.1))
                };
                if depth < row.len() {
                    row.select_nth_unstable_by(depth - 1, by_distance);
                    row.truncate(depth);
                }
                row.sort_unstable_by(by_distance);
                let relevant: Vec<bool> =
                    row.iter().map(|&(_, j)| labels[j] == labels[q]).collect();
                let hits = ks
                    .iter()
                    .map(|&k| relevant[..k.min(relevant.len())].contains(&true))
                    .collect();
                let mut found = 0usize;
                let mut precision_sum = 0.0;
                for (i, &rel) in relevant[..r].iter().enumerate() {
                    if rel {
                        found += 1;
                        precision_sum += found as f64 / (i + 1) as f64;
                    }
                }
                Some((hits, found as f64 / r as f64, precision_sum / r as f64))
            },
        )
        .collect();

    let counted: Vec<&(Vec<bool>, f64, f64)> = per_query.iter().flatten().collect();
    let total = counted.len().max(1) as f64;
    let mut metrics = Metrics::new();
    for (i, k) in ks.iter().enumerate() {
        let hits = counted.iter().filter(|q| q.0[i]).count();
        metrics.insert(format!("recall@{k}"), hits as f64 / total);
    }
    metrics.insert(
        "r_precision".into(),
        counted.iter().map(|q| q.1).sum::<f64>() / total,
    );
    metrics.insert(
        "map@r".into(),
        counted.iter().map(|q| q.2).sum::<f64>() / total,
    );
    metrics
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise the loop.
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_set_with_known_answers() {
        // 1-D points: class 0 at 0.0, 0.1, 5.0; class 1 at 1.0, 1.1; class 2 alone at 9.0.
        let points = [0.0f32, 0.1, 5.0, 1.0, 1.1, 9.0];
        let labels = [0, 0, 0, 1, 1, 2];
        let m = retrieval_metrics(&points, 1, &labels, &[1, 2, 4]);
        // Queries (item 5 is left out: its class has no other item):
        // 0.0: 0.1(+) 1.0 1.1 5.0(+)        R=2: [+,-] -> RP 1/2, AP (1/1)/2 = 0.5
        // 0.1: 0.0(+) 1.0 1.1 5.0(+)        same as above
        // 5.0: 1.1 1.0 0.1(+) 0.0(+)        R=2: [-,-] -> RP 0, AP 0; recall@1,2 miss, @4 hit
        // 1.0: 1.1(+)                       R=1: RP 1, AP 1
        // 1.1: 1.0(+)                       R=1: RP 1, AP 1
        assert!((m["recall@1"] - 4.0 / 5.0).abs() < 1e-12);
        assert!((m["recall@2"] - 4.0 / 5.0).abs() < 1e-12);
        assert!((m["recall@4"] - 1.0).abs() < 1e-12);
        assert!((m["r_precision"] - (0.5 + 0.5 + 0.0 + 1.0 + 1.0) / 5.0).abs() < 1e-12);
        assert!((m["map@r"] - (0.5 + 0.5 + 0.0 + 1.0 + 1.0) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn map_at_r_rewards_order_within_the_first_r() {
        // Query 0 (class 0, R = 2) sees: 1 (-), 2 (+), 3 (+): AP@R = (1/2) / 2 = 0.25.
        let points = [0.0f32, 1.0, 2.2, 3.0];
        let labels = [0, 1, 0, 0];
        let m = retrieval_metrics(&points, 1, &labels, &[1]);
        // Query 2: 3(+) 1(-) 0(+) -> R=2: [+,-] AP 0.5, RP 0.5
        // Query 3: 2(+) 1(-) 0(+) -> same: AP 0.5, RP 0.5
        // Query 1 is alone in class 1: left out.
        assert!((m["map@r"] - (0.25 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m["r_precision"] - (0.5 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m["recall@1"] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn dot_handles_lengths_not_multiple_of_eight() {
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..11).map(|i| (i * i) as f32).sum::<f32>());
    }
}
