//! The train lines: agml's training step against PyTorch eager's, per model and backend.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde_json::{Value, json};

use super::json_of;

pub(crate) const STEP_BATCH: usize = 32;

/// A training step binary: the line's label, the backend it runs, its path.
struct StepBench {
    label: &'static str,
    backend: &'static str,
    path: PathBuf,
}

/// The train_step_bench binary of each build: flex's beside this one, flex with burn-flex's
/// SIMD kernels as `train_step_bench-simd` and tch's as `train_step_bench-tch` (`make bench`
/// and `make bench BACKEND=tch` copy them there), so that this binary, agml and flex's step
/// are default builds that do not load libtorch at start.
fn step_benches() -> anyhow::Result<Vec<StepBench>> {
    let me = std::env::current_exe()?;
    let builds = [
        ("flex", "flex", "train_step_bench"),
        ("flex-simd", "flex", "train_step_bench-simd"),
        ("tch", "tch", "train_step_bench-tch"),
    ];
    Ok(builds
        .into_iter()
        .map(|(label, backend, file)| StepBench {
            label,
            backend,
            path: me.with_file_name(file),
        })
        .filter(|bench| bench.label == "flex" || bench.path.is_file())
        .collect())
}

/// Seconds of one training step (after a warm-up step) of BACKBONE + attentive head on
/// `backend`, by `step_bench` in a process of its own with `threads` threads.
pub(crate) fn train_step_seconds(
    step_bench: &Path,
    backbone: &str,
    size: usize,
    steps: usize,
    backend: &str,
    threads: usize,
) -> anyhow::Result<f64> {
    let output = Command::new(step_bench)
        .args([
            backbone,
            "attentive",
            &size.to_string(),
            &STEP_BATCH.to_string(),
        ])
        .args([&steps.to_string(), "--backend", backend])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .with_context(|| format!("running {}", step_bench.display()))?;
    json_of(output, "train_step_bench")?["seconds_per_step"]
        .as_f64()
        .context("train_step_bench printed no seconds_per_step")
}

/// (backbone, image side, timed steps): the three train lines of issue 7.
pub(crate) const TRAIN_MODELS: [(&str, usize, usize); 3] = [
    ("convnet-small", 28, 20),
    ("resnet18", 64, 5),
    ("resnet50", 224, 2),
];

/// Processes per side and line: each round runs the reference and then every backend's step,
/// and a line reports the medians, so that a slow moment of this shared machine moves one
/// round, not the ratio.
const TRAIN_ROUNDS: usize = 3;

/// The target ratio of a train line (issue 15); convnet-small: no worse than when the issue
/// was filed (AVX-512 machine, 2026-12-01).
fn train_target(backbone: &str, backend: &str) -> f64 {
    match (backbone, backend) {
        ("resnet50", "tch") => 1.0,
        ("resnet50", _) => 1.5,
        ("resnet18", "tch") => 0.9,
        ("resnet18", _) => 1.3,
        (_, "tch") => 0.84,
        _ => 1.24,
    }
}

/// `run`'s result and the CPU seconds the hypervisor gave to other guests meanwhile (all
/// CPUs; /proc/stat's steal column, in USER_HZ ticks, 100 a second on Linux): on a shared VM a
/// round's time is only as good as the CPU it got. `None` where /proc/stat has no such column.
fn with_steal<T>(run: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Option<f64>)> {
    let before = stolen_ticks();
    let result = run()?;
    let steal = before
        .zip(stolen_ticks())
        .map(|(before, after)| after.saturating_sub(before) as f64 / 100.0);
    Ok((result, steal))
}

/// The steal ticks of all CPUs since boot (the 8th value of /proc/stat's `cpu` line).
fn stolen_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

/// The stolen seconds of a line's rounds, summed ("?" where not measured).
fn total_steal(rounds: &[Option<f64>]) -> String {
    rounds
        .iter()
        .copied()
        .sum::<Option<f64>>()
        .map_or("?".into(), |s| format!("{s:.1}"))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Seconds per step of the PyTorch reference, in a process of its own.
fn reference_step_seconds(
    python: &str,
    script: &Path,
    (backbone, size, steps): (&str, usize, usize),
    threads: usize,
) -> anyhow::Result<f64> {
    json_of(
        Command::new(python)
            .arg(script)
            .args([backbone, &size.to_string(), &STEP_BATCH.to_string()])
            .args([&steps.to_string(), &threads.to_string()])
            .output()
            .with_context(|| format!("running {python} (make reference-env installs it)"))?,
        "the PyTorch training step",
    )?["seconds_per_step"]
        .as_f64()
        .context("train_step.py printed no seconds_per_step")
}

/// Training step of each model on each compiled backend against PyTorch eager (same
/// architecture, loss family and optimiser, same thread count), batch 32: medians of
/// [`TRAIN_ROUNDS`] interleaved rounds.
pub(crate) fn train_bench(
    python: &str,
    threads: usize,
    models: Option<&[String]>,
) -> anyhow::Result<Vec<Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reference/train_step.py");
    let benches = step_benches()?;
    let mut lines = Vec::new();
    let chosen = |backbone: &str| models.is_none_or(|m| m.iter().any(|name| name == backbone));
    for model @ (backbone, size, steps) in TRAIN_MODELS {
        if !chosen(backbone) {
            continue;
        }
        let (mut reference, mut reference_steal) = (Vec::new(), Vec::new());
        let mut ours = vec![Vec::new(); benches.len()];
        let mut ours_steal = vec![Vec::new(); benches.len()];
        for _ in 0..TRAIN_ROUNDS {
            let (seconds, steal) =
                with_steal(|| reference_step_seconds(python, &script, model, threads))?;
            reference.push(seconds);
            reference_steal.push(steal);
            for ((bench, ours), ours_steal) in benches.iter().zip(&mut ours).zip(&mut ours_steal) {
                let (seconds, steal) = with_steal(|| {
                    train_step_seconds(&bench.path, backbone, size, steps, bench.backend, threads)
                })?;
                ours.push(seconds);
                ours_steal.push(steal);
            }
        }
        let reference_median = median(&reference);
        for ((bench, ours), ours_steal) in benches.iter().zip(&ours).zip(&ours_steal) {
            let name = format!("train/{backbone}/{}", bench.label);
            let ours_median = median(ours);
            let ratio = ours_median / reference_median;
            let target = train_target(backbone, bench.backend);
            let images_per_second = |seconds: f64| STEP_BATCH as f64 / seconds;
            let spread = |v: &[f64]| {
                let (lo, hi) = (
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    v.iter().copied().fold(0.0, f64::max),
                );
                format!("{lo:.3}-{hi:.3}")
            };
            println!(
                "{name}: {size}x{size}, batch {STEP_BATCH}, median of {TRAIN_ROUNDS}: agml {ours_median:.3} s/step \
                 ({:.1} images/s; {}), PyTorch {reference_median:.3} s/step ({:.1} images/s; {}): \
                 ratio {ratio:.2} (target <= {target}); CPU stolen by the host: {} s in agml's rounds, \
                 {} s in PyTorch's",
                images_per_second(ours_median),
                spread(ours),
                images_per_second(reference_median),
                spread(&reference),
                total_steal(ours_steal),
                total_steal(&reference_steal),
            );
            lines.push(json!({
                "name": name,
                "agml_seconds": ours_median,
                "agml_seconds_each": ours,
                "reference": format!("PyTorch 2.9.0 eager, same {backbone} + attentive head, margin + diversity loss, Adam, {size}x{size}, batch {STEP_BATCH}"),
                "reference_seconds": reference_median,
                "reference_seconds_each": reference,
                "agml_steal_seconds_each": ours_steal,
                "reference_steal_seconds_each": reference_steal,
                "agml_images_per_second": images_per_second(ours_median),
                "reference_images_per_second": images_per_second(reference_median),
                "ratio": ratio,
                "target": target,
                "threads": threads,
                "date": agml::store::utc_now(),
            }));
        }
    }
    Ok(lines)
}
