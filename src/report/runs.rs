//! The runs of a matrix as read from the store: finished runs with their metrics, and the
//! axis values of the cells not finished (so tables can mark them missing).

use std::path::PathBuf;

use anyhow::Context;

use crate::matrix::{Axis, AxisValues, Matrix};
use crate::store::{RunFile, RunState, RunStore};
use crate::train::SEMANTICS;

/// The axes that name what a table row or column compares; `seed` and `fold` are replicates.
pub const KEY_COLUMNS: [Axis; 7] = Axis::KEYS;

/// One finished run: its axis values and the metrics of its selected epoch.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub hash: String,
    /// The run's directory in the store (figures read its arrays and history).
    pub dir: PathBuf,
    pub values: AxisValues,
    /// Test metrics of the selected epoch, in metrics.json order (sorted by name).
    pub test: Vec<(String, f64)>,
    /// Validation metrics of the selected epoch.
    pub val: Vec<(String, f64)>,
    /// Interpretability numbers of the selected epoch (empty for heads without groups/maps).
    pub interpretability: Vec<(String, f64)>,
    pub selected_epoch: u64,
}

/// Every cell of a matrix, split into finished runs and cells still to run.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    pub finished: Vec<RunRow>,
    /// Axis values of the cells that are not done (pending, failed or stale).
    pub pending: Vec<AxisValues>,
}

impl Runs {
    /// Axis values of every cell, finished first, each part in matrix order.
    pub fn planned(&self) -> impl Iterator<Item = &AxisValues> {
        self.finished.iter().map(|r| &r.values).chain(&self.pending)
    }
}

/// The numeric fields of a JSON object, by name.
pub(crate) fn numbers(value: &serde_json::Value) -> Vec<(String, f64)> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// A done run's `metrics.json`, which must hold a `test` object.
pub(crate) fn read_metrics(store: &RunStore, hash: &str) -> anyhow::Result<serde_json::Value> {
    let path = store.run_dir(hash).join(RunFile::Metrics.name());
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if !value["test"].is_object() {
        anyhow::bail!("{}: no `test` object", path.display());
    }
    Ok(value)
}

/// Reads `metrics.json` of every done cell of `matrix`.
pub fn collect_runs(matrix: &Matrix, store: &RunStore) -> anyhow::Result<Runs> {
    let mut runs = Runs::default();
    for cell in &matrix.cells {
        if !matches!(store.state(&cell.hash, SEMANTICS), RunState::Done(_)) {
            runs.pending.push(cell.values.clone());
            continue;
        }
        let dir = store.run_dir(&cell.hash);
        let value = read_metrics(store, &cell.hash)?;
        runs.finished.push(RunRow {
            hash: cell.hash.clone(),
            dir,
            values: cell.values.clone(),
            test: numbers(&value["test"]),
            val: numbers(&value["val"]),
            interpretability: numbers(&value["interpretability"]),
            selected_epoch: value["selected_epoch"].as_u64().unwrap_or(0),
        });
    }
    Ok(runs)
}
