//! The plan: each selected cell with its state in the store.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use crate::data::DatasetConfig;
use crate::matrix::{CellFilter, Matrix, PlannedCell};
use crate::store::{RunState, RunStore};
use crate::train::SEMANTICS;

/// A cell and what the store holds for it.
#[derive(Debug, Clone)]
pub struct PlanEntry<'a> {
    pub cell: &'a PlannedCell,
    pub state: RunState,
}

impl PlanEntry<'_> {
    /// The `plan --json` object: hash, status and effective configuration.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = json!({
            "hash": self.cell.hash,
            "status": self.state.label(),
            "cell": self.cell.config,
        });
        match &self.state {
            RunState::Failed(failure) => value["reason"] = json!(failure.reason),
            RunState::Interrupted { epochs_done } => value["epochs_done"] = json!(epochs_done),
            _ => {}
        }
        value
    }
}

/// The state of every cell of `matrix` that `filter` selects.
pub fn plan<'a>(matrix: &'a Matrix, filter: &CellFilter, store: &RunStore) -> Vec<PlanEntry<'a>> {
    matrix
        .select(filter)
        .into_iter()
        .map(|cell| PlanEntry {
            cell,
            state: store.state(&cell.hash, SEMANTICS),
        })
        .collect()
}

/// Inputs that `cells` need and that are not on disk (dataset folders, an own dataset's
/// images or a content changed since the matrix was read, pretrained weights), one line each
/// with the number of cells that need it.
pub fn missing_inputs(cells: &[&PlannedCell]) -> Vec<String> {
    let mut missing: Vec<(String, usize)> = Vec::new();
    let mut note = |line: String| match missing.iter_mut().find(|(l, _)| *l == line) {
        Some((_, count)) => *count += 1,
        None => missing.push((line, 1)),
    };
    // An own dataset's problem, once per dataset: listing it checks every image.
    let mut own_problems: HashMap<(String, &Path), Option<String>> = HashMap::new();
    for cell in cells {
        if cell.config.dataset.needs_root() && !cell.data_root.is_dir() {
            note(format!(
                "dataset {} root {}",
                cell.values.dataset,
                cell.data_root.display()
            ));
        } else if let DatasetConfig::Csv(own) | DatasetConfig::ImageFolder(own) =
            &cell.config.dataset
        {
            let key = (own.content_sha256.clone(), cell.data_root.as_path());
            let problem = own_problems.entry(key).or_insert_with(|| {
                let loaded =
                    (cell.config.dataset).load(&cell.data_root, cell.data_table.as_deref());
                loaded
                    .err()
                    .map(|e| format!("dataset {}: {e}", cell.values.dataset))
            });
            if let Some(problem) = problem {
                note(problem.clone());
            }
        }
        if let Some(weights) = &cell.weights
            && !weights.is_file()
        {
            note(format!(
                "{} weights {}",
                cell.values.backbone,
                weights.display()
            ));
        }
    }
    missing
        .into_iter()
        .map(|(line, count)| format!("{line} (needed by {count} cells)"))
        .collect()
}
