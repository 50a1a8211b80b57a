//! Training: the loop, optimisation and checkpoints of one run.

pub mod artifacts;
pub mod config;
pub mod device;
pub mod optim;
pub mod resume;
pub mod run;

pub use config::{RunConfig, TrainConfig};
pub use device::Backend;
pub use run::{EpochRecord, RunOutcome, train_run};

/// Version of what a run computes: bump it when a change alters the numbers a cell produces,
/// so that runs made before show as stale.
pub const SEMANTICS: u32 = 4;
