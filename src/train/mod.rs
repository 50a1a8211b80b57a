//! Training: the step and epoch, optimisation, keep-the-best and resume state of one run.

pub mod adam;
pub mod artifacts;
pub mod best;
pub mod config;
pub mod device;
pub(crate) mod embed;
pub mod keep_awake;
pub mod optim;
pub mod protocol;
pub mod record;
pub mod resume;
pub mod run;
pub mod trainer;

pub use config::{RunConfig, TrainConfig};
pub use device::Backend;
pub use protocol::Protocol;
pub use record::{EpochRecord, RunOutcome};
pub use run::{CheckpointEvery, Checkpoints, Stopped, train_run};
pub use trainer::Trainer;

/// Version of what a run computes: bump it when a change alters the numbers a cell produces,
/// so that runs made before show as stale. 6: NMI and F1 from faiss-style k-means (issue 14).
/// 7: convolution gradients (issue 15): agml's im2col weight gradient on flex, libtorch's own
/// convolution backward on tch; the same gradients summed in another order. 8: the backbone's
/// operations as agml's own (issue 15, `src/model/ops/`): on flex the whole convolution as
/// products over several images' patch matrices and BatchNorm as one kernel each way; on tch
/// libtorch's native BatchNorm and its backward. 9: flex sums in one order on every x86-64
/// machine (issue 16): burn-flex's reductions without SIMD (the `simd` feature brings them
/// back), agml's matrix products split into sums of at most 512 terms.
pub const SEMANTICS: u32 = 9;
