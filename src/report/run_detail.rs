//! One run as the store holds it (`agml show`): its configuration, state, metrics,
//! provenance and files; and two runs side by side (`agml diff`): the settings that differ
//! and the metric deltas.

use std::fs;

use anyhow::Context;
use serde::Serialize;

use crate::store::settings::{Change, Settings, axis_values, differences, flatten};
use crate::store::{Failure, Manifest, Provenance, RunFile, RunState, RunStore, size_and_newest};
use crate::train::SEMANTICS;

/// What the store holds for one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub hash: String,
    /// `done`, `stale`, `failed`, `training`, `interrupted` or `pending`.
    pub status: &'static str,
    /// The axis values, as `agml status` prints them.
    pub values: String,
    /// The training-semantics version it was made under (finished runs).
    pub semantics: Option<u32>,
    /// Its cell.toml, as JSON (null when unreadable).
    pub cell: serde_json::Value,
    /// Its metrics.json (finished runs).
    pub metrics: Option<serde_json::Value>,
    pub provenance: Option<Provenance>,
    pub failure: Option<Failure>,
    /// Epochs in its resume state (interrupted runs).
    pub epochs_done: Option<usize>,
    /// Rows of its history.csv: epochs trained and recorded.
    pub history_epochs: usize,
    /// The files of the run folder, by name.
    pub files: Vec<StoredFile>,
    /// Its settings by dotted key (what `diff` compares).
    #[serde(skip)]
    pub settings: Settings,
}

/// One file of a run folder, or of its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct StoredFile {
    pub name: String,
    /// None for an artifact the manifest lists that is not in the folder (a store copied
    /// without its large files, such as the committed reference store).
    pub bytes: Option<u64>,
    /// As the manifest lists it (finished runs).
    pub sha256: Option<String>,
}

impl RunDetail {
    /// Reads run `hash` of `store`.
    pub fn read(store: &RunStore, hash: &str) -> anyhow::Result<RunDetail> {
        let dir = store.run_dir(hash);
        let state = store.state(hash, SEMANTICS);
        let (manifest, failure, epochs_done) = match &state {
            RunState::Done(m) | RunState::Stale(m) => (Some(m.as_ref().clone()), None, None),
            RunState::Failed(f) => (None, Some(f.clone()), None),
            RunState::Interrupted { epochs_done } => (None, None, Some(*epochs_done)),
            RunState::Pending | RunState::Training => (None, None, None),
        };
        let table = fs::read_to_string(dir.join(RunFile::Cell.name()))
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok());
        let cell = table.as_ref().map_or(serde_json::Value::Null, |table| {
            serde_json::to_value(table).unwrap_or_default()
        });
        let settings = table
            .map(|t| flatten(&toml::Value::Table(t)))
            .unwrap_or_default();
        // A finished run's; one whose metrics.json went missing lists it under the files the
        // manifest has and the folder lacks.
        let metrics = manifest.as_ref().and_then(|_| {
            let text = fs::read_to_string(dir.join(RunFile::Metrics.name())).ok()?;
            serde_json::from_str(&text).ok()
        });
        let history_epochs = fs::read_to_string(dir.join(RunFile::History.name()))
            .map_or(0, |text| text.lines().count().saturating_sub(1));
        Ok(RunDetail {
            hash: hash.to_string(),
            status: state.label(),
            values: axis_values(&settings),
            semantics: manifest.as_ref().map(|m| m.semantics),
            cell,
            metrics,
            files: files(&dir, manifest.as_ref())?,
            provenance: manifest.map(|m| m.provenance),
            failure,
            epochs_done,
            history_epochs,
            settings,
        })
    }

    /// The numbers of `set` (`test`, `val`) in metrics.json, in reading order: Recall@K by K,
    /// then MAP@R, R-Precision, NMI, F1, then any other.
    pub fn metrics_of(&self, set: &str) -> Vec<(String, f64)> {
        let mut numbers = (self.metrics.as_ref())
            .map(|m| super::runs::numbers(&m[set]))
            .unwrap_or_default();
        numbers.sort_by_key(|(name, _)| reading_order(name));
        numbers
    }
}

/// Where a metric comes in a line of metrics.
fn reading_order(name: &str) -> (usize, u64, String) {
    if let Some(k) = name.strip_prefix("recall@").and_then(|k| k.parse().ok()) {
        return (0, k, String::new());
    }
    let place = ["map@r", "r_precision", "nmi", "f1"]
        .iter()
        .position(|m| *m == name)
        .unwrap_or(4);
    (1 + place, 0, name.to_string())
}

/// The files of a run folder with their sizes and, for a finished run, their checksums, and
/// the artifacts its manifest lists that the folder lacks; the resume state's folder counts
/// as one entry.
fn files(dir: &std::path::Path, manifest: Option<&Manifest>) -> anyhow::Result<Vec<StoredFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        let bytes = match meta.is_dir() {
            true => size_and_newest(&entry.path())?.0,
            false => meta.len(),
        };
        let sha256 = manifest.and_then(|m| m.artifacts.get(&name).cloned());
        files.push(StoredFile {
            name,
            bytes: Some(bytes),
            sha256,
        });
    }
    for (name, sha256) in manifest.iter().flat_map(|m| &m.artifacts) {
        if !files.iter().any(|f| f.name == *name) {
            let (name, sha256) = (name.clone(), Some(sha256.clone()));
            files.push(StoredFile {
                name,
                bytes: None,
                sha256,
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Two runs side by side.
#[derive(Debug, Clone, Serialize)]
pub struct RunDiff {
    pub a: String,
    pub b: String,
    /// Every setting that differs, by dotted key.
    pub settings: Vec<Change>,
    /// Every metric both runs have, test then val.
    pub metrics: Vec<MetricDelta>,
}

/// One metric of two runs: `delta` = b - a, fractions as metrics.json has them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDelta {
    /// `test` or `val`.
    pub set: String,
    pub metric: String,
    pub a: f64,
    pub b: f64,
    pub delta: f64,
}

impl RunDiff {
    pub fn between(a: &RunDetail, b: &RunDetail) -> RunDiff {
        let mut metrics = Vec::new();
        for set in ["test", "val"] {
            let theirs = b.metrics_of(set);
            for (metric, x) in a.metrics_of(set) {
                if let Some(&(_, y)) = theirs.iter().find(|(n, _)| *n == metric) {
                    let set = set.to_string();
                    let delta = y - x;
                    metrics.push(MetricDelta {
                        set,
                        metric,
                        a: x,
                        b: y,
                        delta,
                    });
                }
            }
        }
        RunDiff {
            a: a.hash.clone(),
            b: b.hash.clone(),
            settings: differences(&a.settings, &b.settings),
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_recall_by_k_then_the_rest() {
        let mut names = [
            "nmi",
            "recall@8",
            "f1",
            "map@r",
            "recall@16",
            "recall@2",
            "other",
        ];
        names.sort_by_key(|n| reading_order(n));
        assert_eq!(
            names,
            [
                "recall@2",
                "recall@8",
                "recall@16",
                "map@r",
                "nmi",
                "f1",
                "other"
            ]
        );
    }
}
