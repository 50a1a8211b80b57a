//! Finished runs of a matrix as a polars DataFrame (one row per run).

use anyhow::Context;
use polars::prelude::*;

use crate::matrix::Matrix;
use crate::store::{RunState, RunStore};
use crate::train::SEMANTICS;

/// The axis columns of a runs table, in display order.
pub const KEY_COLUMNS: [&str; 7] = [
    "dataset",
    "backbone",
    "loss",
    "embedding_size",
    "head",
    "groups",
    "seed",
];

/// One finished run: its axis values and test metrics.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub hash: String,
    pub values: crate::matrix::AxisValues,
    /// Test metrics of the selected epoch, in metrics.json order (sorted by name).
    pub test: Vec<(String, f64)>,
    /// Interpretability numbers of the selected epoch (empty for heads without groups/maps).
    pub interpretability: Vec<(String, f64)>,
    pub selected_epoch: u64,
}

/// Reads `metrics.json` of every done cell of `matrix`; returns the rows and the number of
/// cells not done.
pub fn collect_runs(matrix: &Matrix, store: &RunStore) -> anyhow::Result<(Vec<RunRow>, usize)> {
    let mut rows = Vec::new();
    let mut missing = 0;
    for cell in &matrix.cells {
        if !matches!(store.state(&cell.hash, SEMANTICS), RunState::Done(_)) {
            missing += 1;
            continue;
        }
        let path = store.run_dir(&cell.hash).join("metrics.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let test = value["test"]
            .as_object()
            .with_context(|| format!("{}: no `test` object", path.display()))?
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
            .collect();
        let interpretability = value["interpretability"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(RunRow {
            hash: cell.hash.clone(),
            values: cell.values.clone(),
            test,
            interpretability,
            selected_epoch: value["selected_epoch"].as_u64().unwrap_or(0),
        });
    }
    Ok((rows, missing))
}

/// Every test metric some run has, in first-seen order (a run without one gets a null).
pub fn metric_names(rows: &[RunRow]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in rows.iter().flat_map(|r| &r.test) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The runs as a DataFrame: axis columns, `hash`, `selected_epoch`, and one column per metric.
pub fn runs_frame(rows: &[RunRow]) -> PolarsResult<DataFrame> {
    let text = |f: &dyn Fn(&RunRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let int = |f: &dyn Fn(&RunRow) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
    let mut columns = vec![
        Column::new("dataset".into(), text(&|r| r.values.dataset.to_string())),
        Column::new("backbone".into(), text(&|r| r.values.backbone.to_string())),
        Column::new("loss".into(), text(&|r| r.values.loss.to_string())),
        Column::new(
            "embedding_size".into(),
            int(&|r| r.values.embedding_size as u64),
        ),
        Column::new("head".into(), text(&|r| r.values.head.to_string())),
        Column::new("groups".into(), int(&|r| r.values.groups as u64)),
        Column::new("seed".into(), int(&|r| r.values.seed)),
        Column::new("hash".into(), text(&|r| r.hash.clone())),
        Column::new("selected_epoch".into(), int(&|r| r.selected_epoch)),
    ];
    let metric_names = metric_names(rows);
    for name in &metric_names {
        let values: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.test.iter().find(|(k, _)| k == name).map(|(_, v)| *v))
            .collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    DataFrame::new(rows.len(), columns)
}
