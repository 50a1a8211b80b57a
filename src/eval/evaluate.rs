//! `agml evaluate`: metrics of stored embeddings and labels (`.npy`), leave-one-out or
//! queries against a gallery.

use std::path::Path;

use super::cluster::clustering_metrics;
use super::knn::Vectors;
use super::npy::{NpyArray, NpyValues, read_npy};
use super::retrieval::{Metrics, query_gallery_metrics, retrieval_metrics};
use crate::error::BadInput;

/// Seed of the k-means restarts behind NMI and F1.
pub const CLUSTER_SEED: u64 = 0;

/// Float32 `[n, d]` embeddings from a `.npy` file.
pub fn read_embeddings(path: &Path) -> Result<(Vec<f32>, usize), BadInput> {
    match read_npy(path)? {
        NpyArray {
            shape,
            values: NpyValues::Float(values),
        } if shape.len() == 2 && shape[1] > 0 => Ok((values, shape[1])),
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

/// Metrics of `embeddings` with `labels` (leave-one-out), or of them as queries against
/// `gallery` (with its labels). Recall at each of `ks`; NMI and F1 of k-means on the
/// embeddings (the queries, in gallery mode).
pub fn evaluate_files(
    embeddings: &Path,
    labels: &Path,
    gallery: Option<(&Path, &Path)>,
    ks: &[usize],
) -> Result<Metrics, BadInput> {
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
    let mut metrics = match gallery {
        None => retrieval_metrics(&values, dim, &labels, ks),
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
            let mut both = dense(&[&raw_labels, &raw_gallery_labels]);
            let gallery_labels = both.pop().expect("two sets");
            let query_labels = both.pop().expect("two sets");
            query_gallery_metrics(
                Vectors::new(&values, dim),
                &query_labels,
                Vectors::new(&gallery_values, dim),
                &gallery_labels,
                ks,
            )
        }
    };
    metrics.extend(clustering_metrics(&values, dim, &labels, CLUSTER_SEED));
    Ok(metrics)
}
