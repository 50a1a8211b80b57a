//! How agml's processes ask glibc's malloc to keep the memory they free.
//!
//! A training step allocates and frees the same large buffers every step (activations,
//! gradients, libtorch's and burn's outputs). With glibc's defaults many go back to the kernel
//! when freed: buffers over the mmap threshold are unmapped, and each thread's own arena unmaps
//! its 64 MiB heaps once they empty. The next step takes them back a page fault at a time, each
//! a zeroed page. PyTorch's CPU tuning guide answers the same with jemalloc or tcmalloc; one
//! arena, no mmap and no trimming does it without a preloaded library, for burn's buffers
//! (Rust's allocator is malloc) and libtorch's alike.
//!
//! Measured with `train_step_bench resnet50 attentive 224 32` on tch (2 threads, runs of 1 and 2
//! steps under `/usr/bin/time`; docs/benchmarks.md, "Freed memory kept"): 1.7 million page
//! faults and 4.6 s of system time a step before, 37,000 and none after; 11.3 -> 8.2-8.7 s a
//! step. The price is the peak RSS, where freed buffers fragment the one heap: 4.2-4.6 -> 5.3-5.4
//! GB on tch, 3.2 GB on flex before and after.

/// Sets malloc's options for this process; call first thing in `main`, before any thread
/// starts (an arena made earlier stays in use). A no-op where the C library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters; called before other threads allocate.
    unsafe {
        // One arena: a thread's own arena returns its emptied heaps to the kernel.
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Large buffers from the heap, not from mmap (which unmaps them when freed).
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Never shrink the heap (-1: trimming off).
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
