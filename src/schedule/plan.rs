//! The plan: each selected cell with its state in the store.

use serde_json::json;

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
        if let RunState::Failed(failure) = &self.state {
            value["reason"] = json!(failure.reason);
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
