//! Which cells a run trains: the one place the rule lives (`run`, `run-cell` and the local
//! executor's re-check under the lock all ask here).

use crate::matrix::PlannedCell;
use crate::store::{RunState, RunStore, verify_run};
use crate::train::SEMANTICS;

use super::plan::PlanEntry;

/// What a run redoes besides pending and failed cells.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redo {
    /// Every selected cell, done or not.
    pub force: bool,
    /// Cells finished under another training-semantics version.
    pub stale: bool,
}

/// True when `hash` is finished under the current semantics and every artifact still matches
/// its manifest: the only state in which a cell is not trained again.
pub fn done_and_intact(store: &RunStore, hash: &str) -> bool {
    match store.state(hash, SEMANTICS) {
        RunState::Done(manifest) => verify_run(store, &manifest).is_empty(),
        _ => false,
    }
}

/// The cells of `entries` to train: pending, failed and interrupted ones (and running ones,
/// which the executor skips), done ones whose artifacts no longer match their manifest (each
/// mismatch logged), and what `redo` adds.
pub fn cells_to_run<'a>(
    entries: &[PlanEntry<'a>],
    store: &RunStore,
    redo: Redo,
) -> Vec<&'a PlannedCell> {
    entries
        .iter()
        .filter(|e| match &e.state {
            RunState::Done(manifest) => {
                redo.force || {
                    let mismatches = verify_run(store, manifest);
                    for m in &mismatches {
                        tracing::warn!("{m}: redoing the run");
                    }
                    !mismatches.is_empty()
                }
            }
            RunState::Stale(_) => redo.force || redo.stale,
            // A running cell's writer holds its lock: the executor skips it, saying so.
            RunState::Pending
            | RunState::Failed(_)
            | RunState::Interrupted { .. }
            | RunState::Training => true,
        })
        .map(|e| e.cell)
        .collect()
}
