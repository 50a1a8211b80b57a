//! Retrieval metrics over exact Euclidean k-nearest neighbours: Recall@K, R-Precision and
//! MAP@R (Musgrave et al., "A Metric Learning Reality Check", 2020), as
//! pytorch-metric-learning's AccuracyCalculator computes them (k = "max_bin_count").
//!
//! Leave-one-out: every item is a query against all others, and a query whose class has no
//! other item is left out of every metric. Query-vs-gallery (In-Shop): queries against a
//! separate gallery, and a query whose class is not in the gallery is left out.

use std::collections::{BTreeMap, HashMap};

use super::knn::{Vectors, map_neighbourhoods, map_self_neighbourhoods};

/// Metric name -> value in [0, 1] (`recall@1`, `map@r`, `r_precision`, `nmi`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// Leave-one-out metrics of `embeddings` (`[n, dim]` row-major) with `labels`; Recall at each
/// of `ks`.
pub fn retrieval_metrics(
    embeddings: &[f32],
    dim: usize,
    labels: &[usize],
    ks: &[usize],
) -> Metrics {
    let v = Vectors::new(embeddings, dim);
    assert_eq!(v.len(), labels.len(), "one label per embedding");
    rank_metrics(v, labels, v, labels, true, ks)
}

/// Metrics of `queries` against a separate `gallery`.
pub fn query_gallery_metrics(
    queries: Vectors,
    query_labels: &[usize],
    gallery: Vectors,
    gallery_labels: &[usize],
    ks: &[usize],
) -> Metrics {
    assert_eq!(queries.len(), query_labels.len(), "one label per query");
    assert_eq!(
        gallery.len(),
        gallery_labels.len(),
        "one label per gallery item"
    );
    rank_metrics(queries, query_labels, gallery, gallery_labels, false, ks)
}

fn rank_metrics(
    queries: Vectors,
    query_labels: &[usize],
    references: Vectors,
    reference_labels: &[usize],
    same_source: bool,
    ks: &[usize],
) -> Metrics {
    let mut class_sizes: HashMap<usize, usize> = HashMap::new();
    for &l in reference_labels {
        *class_sizes.entry(l).or_default() += 1;
    }
    // R: the other items of the query's class among the references.
    let relevant = |q: usize| {
        let size = class_sizes.get(&query_labels[q]).copied().unwrap_or(0);
        if same_source {
            size.saturating_sub(1)
        } else {
            size
        }
    };
    let max_k = ks.iter().copied().max().unwrap_or(1);
    let depth = |q: usize| {
        if relevant(q) == 0 {
            0
        } else {
            max_k.max(relevant(q))
        }
    };
    // Per query: (hit at each K, R-Precision, average precision at R); None if left out.
    let per_query_metrics = |q: usize, neighbours: &[(f32, u32)]| {
        let r = relevant(q);
        if r == 0 {
            return None;
        }
        let label = query_labels[q];
        let is_match: Vec<bool> = neighbours
            .iter()
            .map(|&(_, j)| reference_labels[j as usize] == label)
            .collect();
        let mut found = 0usize;
        let mut precision_sum = 0.0f64;
        for (i, &m) in is_match[..r.min(is_match.len())].iter().enumerate() {
            if m {
                found += 1;
                precision_sum += found as f64 / (i + 1) as f64;
            }
        }
        let hits: Vec<bool> = ks
            .iter()
            .map(|&k| is_match[..k.min(is_match.len())].contains(&true))
            .collect();
        Some((hits, found as f64 / r as f64, precision_sum / r as f64))
    };
    // Leave-one-out ranks a set against itself: the symmetric search computes half the products.
    let per_query = if same_source {
        map_self_neighbourhoods(queries, depth, per_query_metrics)
    } else {
        map_neighbourhoods(queries, references, false, depth, per_query_metrics)
    };
    let counted: Vec<&(Vec<bool>, f64, f64)> = per_query.iter().flatten().collect();
    let n = counted.len().max(1) as f64;
    let mut metrics = Metrics::new();
    for (i, k) in ks.iter().enumerate() {
        let hits = counted.iter().filter(|q| q.0[i]).count();
        metrics.insert(format!("recall@{k}"), hits as f64 / n);
    }
    metrics.insert(
        "r_precision".into(),
        counted.iter().map(|q| q.1).sum::<f64>() / n,
    );
    metrics.insert("map@r".into(), counted.iter().map(|q| q.2).sum::<f64>() / n);
    metrics
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
        // 5.0: 1.1 1.0 9.0 0.1(+) 0.0(+)    R=2: [-,-] -> RP 0, AP 0; recall@1,2 miss, @4 hit
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
    fn query_gallery_mode_counts_every_gallery_match() {
        // Gallery: class 0 at 0 and 4, class 1 at 1. Queries: class 0 at 0.9 (nearest 1: miss),
        // class 1 at 3 (nearest 4: miss, then 1: hit), class 2 (not in the gallery: left out).
        let gallery = [0.0f32, 4.0, 1.0];
        let queries = [0.9f32, 3.0, 7.0];
        let m = query_gallery_metrics(
            Vectors::new(&queries, 1),
            &[0, 1, 2],
            Vectors::new(&gallery, 1),
            &[0, 0, 1],
            &[1, 2],
        );
        assert!((m["recall@1"] - 0.0).abs() < 1e-12);
        assert!((m["recall@2"] - 1.0).abs() < 1e-12);
        // Query 0: R = 2, ranking 1(-) 0(+): AP = (1/2)/2; query 1: R = 1, ranking 4(-): AP 0.
        assert!((m["map@r"] - (0.25 + 0.0) / 2.0).abs() < 1e-12);
    }
}
