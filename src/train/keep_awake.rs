//! Keeps a flex training step's processors from halting between its parallel regions.
//!
//! A step is hundreds of parallel regions, and between two of them rayon's idle workers go to
//! sleep within microseconds. A processor with nothing to run halts; in a virtual machine the
//! host may then give the core to another guest, and the next region's wake-up waits until
//! the host runs this one again: time the kernel counts as stolen. PyTorch's OpenMP threads
//! spin between regions and meet this far less. On this project's shared 2-core VM, in the
//! same minutes, `train_step_bench resnet18 attentive 64 32 12` on flex lost 3-34 % of its
//! CPU to the host, two SCHED_IDLE spinners beside it cut that to 0.3-4.4 %, and PyTorch's
//! step lost 0.4-2.8 % (docs/benchmarks.md, "Processors kept awake").
//!
//! So while a step runs, one spinner per thread of rayon's pool runs at SCHED_IDLE, the lowest
//! priority: a thread of agml that wakes takes the processor from it at once, and so does any
//! other process's. A spinner only yields, over and over: a rayon worker looking for work
//! yields a few times before it sleeps, and a spinner that kept the processor then would hold
//! the worker up until the next tick (spinners that spun instead made the quiet host's step
//! slower, 0.52-0.53 s against 0.45-0.49). Between steps the spinners park. Linux only, and
//! flex only: libtorch's parallel regions are OpenMP's, whose threads spin on their own (tch's
//! ResNet-18 step with spinners took 0.38-0.46 s, without 0.36-0.41).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::Thread;

use burn::tensor::Device;

/// Steps running now (the local scheduler trains several cells in one process).
static STEPS: AtomicUsize = AtomicUsize::new(0);
static SPINNERS: OnceLock<Vec<Thread>> = OnceLock::new();

/// Whether steps on `device` keep the processors awake: flex's, whose parallel regions are
/// rayon's.
pub fn wanted_on(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if device.clone().inner() == Device::flex() {
        return true;
    }
    let _ = device;
    false
}

/// The processors stay awake until this drops.
#[must_use]
pub struct Awake(());

/// Keeps the processors awake while the returned guard lives.
pub fn while_stepping() -> Awake {
    let spinners = SPINNERS.get_or_init(start_spinners);
    if STEPS.fetch_add(1, Ordering::SeqCst) == 0 {
        spinners.iter().for_each(Thread::unpark);
    }
    Awake(())
}

impl Drop for Awake {
    fn drop(&mut self) {
        STEPS.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start_spinners() -> Vec<Thread> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    (0..rayon::current_num_threads())
        .filter_map(|i| {
            std::thread::Builder::new()
                .name(format!("agml-awake-{i}"))
                .spawn(spin)
                .ok()
        })
        .map(|handle| handle.thread().clone())
        .collect()
}

fn spin() {
    if !lowest_priority() {
        // At normal priority a spinner would take processor time from the step itself.
        return;
    }
    loop {
        if STEPS.load(Ordering::Relaxed) == 0 {
            // An unpark between the load and here makes park return at once.
            std::thread::park();
            continue;
        }
        // Yield only: see the module's comment.
        std::thread::yield_now();
    }
}

/// Moves the calling thread to SCHED_IDLE; false where that is not possible.
fn lowest_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; lowering its own priority needs no privilege.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}
