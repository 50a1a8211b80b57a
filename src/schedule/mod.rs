//! Scheduling: which cells are done, pending, stale or failed, and running the pending ones.

pub mod gc;
pub mod local;
pub mod machine;
pub mod plan;
pub mod policy;
pub mod provenance;
pub mod slurm;
pub mod stop;

pub use local::{RunOptions, RunSummary, on_worker, run_cells};
pub use plan::{PlanEntry, missing_inputs, plan};
pub use policy::{Redo, cells_to_run, done_and_intact};
