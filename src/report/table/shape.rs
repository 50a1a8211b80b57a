//! Which tables a matrix gets: the main comparison, and one per axis that varies.

use super::{Baseline, Shape, key_index};
use crate::matrix::Axis;
use crate::report::aggregate::Aggregate;

/// Metric display order: Recall@K by K, then MAP@R, R-Precision, NMI, F1, the
/// interpretability numbers, then any other by name.
pub fn metric_order(names: &[String]) -> Vec<String> {
    let mut recall: Vec<(usize, String)> = names
        .iter()
        .filter_map(|n| {
            n.strip_prefix("recall@")
                .and_then(|k| k.parse().ok())
                .map(|k| (k, n.clone()))
        })
        .collect();
    recall.sort();
    let mut ordered: Vec<String> = recall.into_iter().map(|(_, n)| n).collect();
    const KNOWN: [&str; 9] = [
        "map@r",
        "r_precision",
        "nmi",
        "f1",
        "group_cosine",
        "attention_overlap",
        "attention_entropy",
        "group_recall@1",
        "best_group_recall@1",
    ];
    ordered.extend(
        KNOWN
            .iter()
            .filter(|k| names.iter().any(|n| n == *k))
            .map(|k| k.to_string()),
    );
    let mut rest: Vec<String> = names
        .iter()
        .filter(|n| !n.starts_with("recall@") && !KNOWN.contains(&n.as_str()))
        .cloned()
        .collect();
    rest.sort();
    ordered.extend(rest);
    ordered
}

/// The keys that name a method: the head and its group count.
const METHOD: [Axis; 2] = [Axis::Head, Axis::Groups];

impl Shape {
    fn test_metrics(aggregate: &Aggregate, only: &[&str]) -> Vec<(&'static str, String)> {
        metric_order(&aggregate.metrics("test"))
            .into_iter()
            .filter(|m| only.is_empty() || only.contains(&m.as_str()))
            .map(|m| ("test", m))
            .collect()
    }

    /// Every shape this matrix has data for: the main table (method x dataset), loss and
    /// backbone generality when those axes vary, the group-count ablation of each head run at
    /// several P, and the interpretability table.
    pub fn all(aggregate: &Aggregate) -> Vec<Shape> {
        let mut shapes = vec![Shape {
            suffix: "",
            what: "test metrics (%) of the selected epoch, per method and dataset".into(),
            rows: METHOD.to_vec(),
            column: Some(Axis::Dataset),
            metrics: Self::test_metrics(aggregate, &[]),
            heads: vec![],
            marks: true,
            baseline: Baseline::NoGrouping,
        }];
        for (suffix, axis) in [("losses", Axis::Loss), ("backbones", Axis::Backbone)] {
            if aggregate.values(axis).len() > 1 {
                shapes.push(Shape {
                    suffix,
                    what: format!(
                        "{axis} generality: Recall@1 and MAP@R (%) of every method under each {axis}"
                    ),
                    rows: METHOD.to_vec(),
                    column: Some(axis),
                    metrics: Self::test_metrics(aggregate, &["recall@1", "map@r"]),
                    heads: vec![],
                    marks: true,
                    baseline: Baseline::NoGrouping,
                });
            }
        }
        shapes.extend(Self::group_ablation(aggregate));
        shapes.extend(Self::interpretability(aggregate));
        shapes
    }

    /// The group-count ablation of the heads run at several P.
    fn group_ablation(aggregate: &Aggregate) -> Option<Shape> {
        let planned = aggregate.planned_keys();
        let (head_at, groups_at) = (key_index(Axis::Head), key_index(Axis::Groups));
        let swept: Vec<String> = aggregate
            .values(Axis::Head)
            .into_iter()
            .filter(|head| {
                let mut groups: Vec<&String> = planned
                    .iter()
                    .filter(|k| &k[head_at] == head)
                    .map(|k| &k[groups_at])
                    .collect();
                groups.dedup();
                groups.len() > 1
            })
            .collect();
        (!swept.is_empty()).then(|| Shape {
            suffix: "groups",
            what: format!(
                "group count ablation ({}): test metrics (%) per number of groups P",
                swept.join(", ")
            ),
            rows: METHOD.to_vec(),
            column: None,
            metrics: Self::test_metrics(aggregate, &[]),
            heads: swept,
            marks: true,
            baseline: Baseline::FewestGroups,
        })
    }

    /// Interpretability numbers beside accuracy, for the heads with groups.
    fn interpretability(aggregate: &Aggregate) -> Option<Shape> {
        let interpretability = aggregate.metrics("interpretability");
        if interpretability.is_empty() {
            return None;
        }
        let mut metrics = Self::test_metrics(aggregate, &["recall@1", "map@r"]);
        metrics.extend(
            metric_order(&interpretability)
                .into_iter()
                .map(|m| ("interpretability", m)),
        );
        Some(Shape {
            suffix: "interpretability",
            what: "interpretability of the selected epoch on the test set, next to its \
                   accuracy (all in %). cos: mean pairwise cosine of an image's group \
                   embeddings; overlap: mean pairwise Bhattacharyya coefficient of its \
                   groups' attention maps (100 identical, 0 disjoint); entropy: attention \
                   entropy over positions / log N (100 uniform); grp R@1 and best grp R@1: \
                   Recall@1 of each group's embedding alone, mean over groups and best group \
                   (below R@1 of the concatenation when groups hold distinct features). Lower \
                   cos and overlap mean more distinct groups, which is not better by itself: \
                   no marks"
                .into(),
            rows: METHOD.to_vec(),
            column: None,
            metrics,
            heads: aggregate
                .values(Axis::Head)
                .into_iter()
                .filter(|h| h != "none")
                .collect(),
            marks: false,
            baseline: Baseline::NoGrouping,
        })
    }
}
