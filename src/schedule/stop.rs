//! Stopping on a signal: SIGINT, SIGTERM (a SLURM time limit or preemption, `kill`) and SIGUSR1
//! (SLURM's warning before the limit, `sbatch --signal`) ask a run to save its state after the
//! step it is in and stop; a second SIGINT or SIGTERM ends it at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// The number of the signal that asked this process to stop; 0 while none has.
fn requested() -> &'static Arc<AtomicUsize> {
    static STOP: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the handlers (once per process, by `run` and `run-cell`).
pub fn install() -> anyhow::Result<()> {
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stopping.clone())?;
    }
    for signal in [SIGINT, SIGTERM, SIGUSR1] {
        signal_hook::flag::register(signal, stopping.clone())?;
        signal_hook::flag::register_usize(signal, requested().clone(), signal as usize)?;
    }
    Ok(())
}

/// The signal that asked to stop, if one has.
pub fn signal() -> Option<usize> {
    match requested().load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The signal's name, for the line a stopped run prints.
pub fn name(signal: usize) -> String {
    match signal as i32 {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGUSR1 => "SIGUSR1".into(),
        other => format!("signal {other}"),
    }
}
