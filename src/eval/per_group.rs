//! Recall@K of each group's embedding alone (the authors' `eval_group`): whether the groups
//! learn distinct features becomes a number, each group below the concatenation of all.

use super::knn::Vectors;
use super::retrieval::{Metrics, query_gallery_metrics, retrieval_metrics};

/// Columns `group * size .. (group + 1) * size` of row-major `[n, groups * size]` embeddings.
fn group_columns(embeddings: &[f32], groups: usize, size: usize, group: usize) -> Vec<f32> {
    embeddings
        .chunks_exact(groups * size)
        .flat_map(|row| &row[group * size..(group + 1) * size])
        .copied()
        .collect()
}

/// Recall@K of each of `groups` groups of `size` dimensions (each already L2-normalised, as
/// a head gives them): leave-one-out, or against `gallery` embeddings and labels.
pub fn per_group_recall(
    embeddings: &[f32],
    labels: &[usize],
    gallery: Option<(&[f32], &[usize])>,
    groups: usize,
    size: usize,
    ks: &[usize],
) -> Vec<Metrics> {
    (0..groups)
        .map(|g| {
            let queries = group_columns(embeddings, groups, size, g);
            let metrics = match gallery {
                None => retrieval_metrics(&queries, size, labels, ks),
                Some((gallery, gallery_labels)) => {
                    let gallery = group_columns(gallery, groups, size, g);
                    query_gallery_metrics(
                        Vectors::new(&queries, size),
                        labels,
                        Vectors::new(&gallery, size),
                        gallery_labels,
                        ks,
                    )
                }
            };
            metrics
                .into_iter()
                .filter(|(name, _)| name.starts_with("recall@"))
                .collect()
        })
        .collect()
}

/// The interpretability numbers of per-group Recall@1: the mean over groups and the best
/// group (both below the concatenation's when the groups hold distinct features).
pub fn per_group_summary(per_group: &[Metrics]) -> Metrics {
    let recall: Vec<f64> = per_group
        .iter()
        .filter_map(|m| m.get("recall@1").copied())
        .collect();
    if recall.is_empty() {
        return Metrics::new();
    }
    let mean = recall.iter().sum::<f64>() / recall.len() as f64;
    let best = recall.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Metrics::from([
        ("group_recall@1".to_string(), mean),
        ("best_group_recall@1".to_string(), best),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_is_ranked_on_its_own_columns() {
        // Two groups of 1 dimension: group 0 separates the classes, group 1 mixes them.
        let embeddings = [0.0, 0.0, 0.1, 5.0, 5.0, 0.1, 5.1, 5.0];
        let labels = [0, 0, 1, 1];
        let per_group = per_group_recall(&embeddings, &labels, None, 2, 1, &[1]);
        assert_eq!(per_group.len(), 2);
        assert_eq!(per_group[0]["recall@1"], 1.0);
        assert_eq!(per_group[1]["recall@1"], 0.0);
        assert!(per_group[0].keys().all(|k| k.starts_with("recall@")));
        let summary = per_group_summary(&per_group);
        assert_eq!(summary["group_recall@1"], 0.5);
        assert_eq!(summary["best_group_recall@1"], 1.0);
        // Against a gallery (class 0 at (0.05, 5.05), class 1 at (5.05, 0.05)): group 0 finds
        // every class; in group 1 only rows 1 and 2 land next to their class.
        let gallery = [0.05, 5.05, 5.05, 0.05];
        let against = per_group_recall(&embeddings, &labels, Some((&gallery, &[0, 1])), 2, 1, &[1]);
        assert_eq!(against[0]["recall@1"], 1.0);
        assert_eq!(against[1]["recall@1"], 0.5);
    }
}
