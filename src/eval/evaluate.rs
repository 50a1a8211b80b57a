//! `agml evaluate`: metrics of stored embeddings and labels (`.npy`), leave-one-out or
//! queries against a gallery.

use std::path::Path;
use std::time::Instant;

use super::cluster::clustering_metrics;
use super::knn::Vectors;
use super::npy::{NpyArray, NpyValues, read_npy};
use super::retrieval::{Metrics, query_gallery_metrics, retrieval_metrics};
use crate::error::BadInput;

/// Seed of the k-means behind NMI and F1.
pub const CLUSTER_SEED: u64 = 0;

/// Float32 `[n, d]` embeddings from a `.npy` file; a NaN or infinite value is bad input naming
/// the first row that has one (a ranking of it would be meaningless).
pub fn read_embeddings(path: &Path) -> Result<(Vec<f32>, usize), BadInput> {
    match read_npy(path)? {
        NpyArray {
            shape,
            values: NpyValues::Float(values),
        } if shape.len() == 2 && shape[1] > 0 => {
            let dim = shape[1];
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(BadInput::new(format!(
                    "{}: row {} has a non-finite value ({} at column {}); embeddings must be finite",
                    path.display(),
                    i / dim,
                    values[i],
                    i % dim
                )));
            }
            Ok((values, dim))
        }
        NpyArray { shape, .. } => Err(BadInput::new(format!(
            "{}: embeddings must be a float array [n, d], found shape {shape:?}",
            path.display()
        ))),
    }
}

/// Integer `[n]` labels from a `.npy` file, as dense class indices.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, BadInput> {
    match read_npy(path)? {
        NpyArray {
            shape,
            values: NpyValues::Int(values),
        } if shape.len() == 1 => Ok(values),
        NpyArray { shape, .. } => Err(BadInput::new(format!(
            "{}: labels must be an integer array [n], found shape {shape:?}",
            path.display()
        ))),
    }
}

/// Maps arbitrary integer labels of several sets onto shared indices 0..classes.
fn dense(sets: &[&[i64]]) -> Vec<Vec<usize>> {
    let mut ids: Vec<i64> = sets.iter().flat_map(|s| s.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    sets.iter()
        .map(|s| {
            s.iter()
                .map(|l| ids.binary_search(l).expect("known label"))
                .collect()
        })
        .collect()
}

/// Which metric families to compute (AccuracyCalculator's `include`): retrieval (Recall@K,
/// MAP@R, R-Precision: one k-NN pass) and clustering (NMI, F1: one k-means).
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    /// The metric names asked for; empty: every metric.
    pub names: Vec<String>,
}

/// Names `--metrics` accepts: `recall@k` stands for Recall at every K of `--k`.
pub const METRIC_NAMES: [&str; 5] = ["recall@k", "map@r", "r_precision", "nmi", "f1"];

impl Requested {
    /// `names` checked against [`METRIC_NAMES`].
    pub fn new(names: &[String]) -> Result<Self, BadInput> {
        for name in names {
            if !METRIC_NAMES.contains(&name.as_str()) {
                return Err(BadInput::new(format!(
                    "--metrics {name}: unknown metric (known: {})",
                    METRIC_NAMES.join(", ")
                )));
            }
        }
        Ok(Self {
            names: names.to_vec(),
        })
    }

    fn wants(&self, name: &str) -> bool {
        let family = if name.starts_with("recall@") {
            "recall@k"
        } else {
            name
        };
        self.names.is_empty() || self.names.iter().any(|n| n == family)
    }

    fn retrieval(&self) -> bool {
        ["recall@k", "map@r", "r_precision"]
            .iter()
            .any(|n| self.wants(n))
    }

    fn clustering(&self) -> bool {
        ["nmi", "f1"].iter().any(|n| self.wants(n))
    }
}

/// What `evaluate` computed, and the seconds each family took.
pub struct Evaluation {
    pub metrics: Metrics,
    pub timings: Vec<(&'static str, f64)>,
}

/// Metrics of `embeddings` with `labels` (leave-one-out), or of them as queries against
/// `gallery` (with its labels): Recall at each of `ks`, MAP@R, R-Precision, and NMI and F1 of
/// k-means on the embeddings (the queries, in gallery mode); only those `requested`.
pub fn evaluate_files(
    embeddings: &Path,
    labels: &Path,
    gallery: Option<(&Path, &Path)>,
    ks: &[usize],
    requested: &Requested,
) -> Result<Evaluation, BadInput> {
    let (values, dim) = read_embeddings(embeddings)?;
    let raw_labels = read_labels(labels)?;
    if values.len() / dim != raw_labels.len() {
        return Err(BadInput::new(format!(
            "{} has {} rows but {} has {} labels",
            embeddings.display(),
            values.len() / dim,
            labels.display(),
            raw_labels.len()
        )));
    }
    let labels = dense(&[&raw_labels]).remove(0);
    let gallery = match gallery {
        None => None,
        Some((gallery_path, gallery_labels_path)) => {
            let (gallery_values, gallery_dim) = read_embeddings(gallery_path)?;
            let raw_gallery_labels = read_labels(gallery_labels_path)?;
            if gallery_dim != dim || gallery_values.len() / dim != raw_gallery_labels.len() {
                return Err(BadInput::new(format!(
                    "{}: {} rows of {gallery_dim} values, {} labels; the queries have {dim} values",
                    gallery_path.display(),
                    gallery_values.len() / gallery_dim,
                    raw_gallery_labels.len()
                )));
            }
            Some((gallery_values, raw_gallery_labels))
        }
    };
    let mut metrics = Metrics::new();
    let mut timings = Vec::new();
    if requested.retrieval() {
        let start = Instant::now();
        metrics.extend(match &gallery {
            None => retrieval_metrics(&values, dim, &labels, ks),
            Some((gallery_values, raw_gallery_labels)) => {
                let mut both = dense(&[&raw_labels, raw_gallery_labels]);
                let gallery_labels = both.pop().expect("two sets");
                let query_labels = both.pop().expect("two sets");
                query_gallery_metrics(
                    Vectors::new(&values, dim),
                    &query_labels,
                    Vectors::new(gallery_values, dim),
                    &gallery_labels,
                    ks,
                )
            }
        });
        timings.push(("retrieval", start.elapsed().as_secs_f64()));
    }
    if requested.clustering() {
        let start = Instant::now();
        metrics.extend(clustering_metrics(&values, dim, &labels, CLUSTER_SEED));
        timings.push(("clustering", start.elapsed().as_secs_f64()));
    }
    metrics.retain(|name, _| requested.wants(name));
    Ok(Evaluation { metrics, timings })
}
