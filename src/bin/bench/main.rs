//! `make bench`: agml against its references, measured in the same run on the same machine.
//! Each line is a ratio (agml seconds / reference seconds); the list goes to bench/latest.json.
//!
//! - eval/knn-60000x512: leave-one-out Recall@1, R-Precision and MAP@R of 60,000 x 512
//!   embeddings, against pytorch-metric-learning's AccuracyCalculator with faiss-cpu
//!   (k = "max_bin_count"), with the values compared and the peak RSS of each process.
//! - loader/jpeg-224: seconds per image of the training loader (decode a 500 x 375 JPEG,
//!   RandomResizedCrop 224, flip, normalise; all cores) against seconds per image of a flex
//!   training step of ResNet-50 + attentive head at 224 x 224 (batch 32): the loader must be at
//!   least 2x faster (ratio <= 0.5).
//! - plan/1000-cells: `agml plan` (the whole command, process start included) of a 1000-cell
//!   matrix whose cells are all done, against the 1 s target.
//!
//! - train/<model>/<backend>: seconds per training step (forward, margin + diversity loss,
//!   backward, Adam) of convnet-small at 28x28, resnet18 at 64x64 and resnet50 at 224x224 with
//!   the attentive head, batch 32, on flex, on flex with burn-flex's SIMD kernels (`flex-simd`:
//!   the `simd` feature, faster but not the same numbers across SIMD widths) and (with `make
//!   bench BACKEND=tch`, which leaves a tch build as `train_step_bench-tch`) on tch, against the
//!   same step in PyTorch eager with the same thread count; each side's median of three
//!   interleaved processes (targets: resnet50 flex <= 1.5 and tch <= 1.0, resnet18 flex <= 1.3
//!   and tch <= 0.9), with the CPU time the host stole during each process (a shared VM's
//!   noise: a round that lost seconds to other guests is slow for that reason alone).
//!
//! - eval/sop-60502x512 (with `--only eval-sop`: minutes): SOP-shaped embeddings (11,316
//!   classes of 2-12), every metric incl. NMI and F1, against AccuracyCalculator with NMI
//!   (faiss k-means, niter=20); values compared (retrieval to 1e-6, NMI to 0.01).
//!
//! - eval/inshop-14218x12612x512 (with `--only eval-inshop`): In-Shop-shaped queries against a
//!   gallery (3,985 items), every metric incl. NMI and F1 of the queries, against
//!   AccuracyCalculator with NMI (`ref_includes_query=False`).
//!
//! Usage: `bench --help`; the internal
//! `bench eval-child E.npy L.npy` measures agml's side in a process of its own (clean RSS), and
//! `bench eval-data DIR` and `bench sop-data DIR` write the evaluation benchmarks' embeddings.

use std::path::{Path, PathBuf};

use agml::schedule::machine::{cpu_model, cpu_simd};
use anyhow::{Context, bail};
use serde_json::{Value, json};

mod eval;
mod loader;
mod plan;
mod train;

use eval::{cluster_child, eval_bench, eval_child, eval_inshop_bench, eval_sop_bench, print_data};
use loader::loader_bench;
use plan::plan_bench;
use train::{TRAIN_MODELS, train_bench};

const USAGE: &str = "Usage: bench [--python PY] [--out FILE] [--threads N] \
[--only eval|eval-sop|eval-inshop|loader|plan|train] [--models convnet-small,resnet18,resnet50]

Times agml against the references in the same run and writes bench/latest.json (`make bench`
builds the binaries it runs). --models: only these train lines.";

/// The flags `bench` takes, each with a value.
const FLAGS: [&str; 5] = ["--python", "--out", "--threads", "--only", "--models"];
/// The values of `--only`.
const ONLY: [&str; 6] = ["eval", "eval-sop", "eval-inshop", "loader", "plan", "train"];

/// Prints the usage and exits 0 on `--help`; exits 2 with the usage on a flag `bench` does not
/// take, a flag without its value, an unknown `--only` or `--models` model: a typo must not
/// start half an hour of benchmarks.
fn check_flags(args: &[String]) {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !FLAGS.contains(&arg.as_str()) {
            usage_error(&format!("unknown argument {arg:?}"));
        }
        let Some(value) = rest.next() else {
            usage_error(&format!("{arg} needs a value"));
        };
        if arg == "--only" && !ONLY.contains(&value.as_str()) {
            usage_error(&format!("--only {value:?}: not one of {}", ONLY.join(", ")));
        }
        let train_line = |model: &str| TRAIN_MODELS.iter().any(|(name, _, _)| *name == model);
        if let Some(model) = value
            .split(',')
            .find(|m| arg == "--models" && !train_line(m))
        {
            usage_error(&format!("--models: no train line for {model:?}"));
        }
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("bench: {message}\n\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    // As `agml`'s main does: the evaluation and loader run in this process, as in a run.
    agml::allocator::keep_freed_memory();
    if let Err(e) = run() {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("eval-child") => return eval_child(&args[1..]),
        // k-means of stored embeddings with k = their classes: seconds, inertia, NMI, F1.
        Some("cluster-child") => return cluster_child(Path::new(&args[1]), Path::new(&args[2])),
        // The benchmarks' embeddings, to time by hand: `bench eval-data DIR` (then `bench
        // eval-child E L`), `bench sop-data DIR` (then `bench eval-child E L all`).
        Some(kind @ ("eval-data" | "sop-data")) => return print_data(kind, Path::new(&args[1])),
        _ => {}
    }
    check_flags(&args);
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let python = flag("--python").unwrap_or_else(|| ".venv/bin/python".into());
    let out = PathBuf::from(flag("--out").unwrap_or_else(|| "bench/latest.json".into()));
    let threads: usize = flag("--threads")
        .map(|t| t.parse().context("--threads"))
        .transpose()?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let only = flag("--only");
    let models: Option<Vec<String>> =
        flag("--models").map(|m| m.split(',').map(str::to_string).collect());
    let tmp = std::env::temp_dir().join(format!("agml-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    println!(
        "agml bench: {} threads, {} ({}), {}",
        threads,
        cpu_model(),
        cpu_simd(),
        agml::store::utc_now()
    );
    let mut results = Vec::new();
    if only.as_deref().is_none_or(|o| o == "eval") {
        results.push(eval_bench(&tmp, &python, threads)?);
    }
    // Minutes on 2 cores (k-means with k = 11,316 / 3,985, both sides): run with --only
    // eval-sop / eval-inshop.
    if only.as_deref() == Some("eval-sop") {
        results.push(eval_sop_bench(&tmp, &python, threads)?);
    }
    if only.as_deref() == Some("eval-inshop") {
        results.push(eval_inshop_bench(&tmp, &python, threads)?);
    }
    if only.as_deref().is_none_or(|o| o == "loader") {
        results.push(loader_bench(&tmp, threads)?);
    }
    if only.as_deref().is_none_or(|o| o == "plan") {
        results.push(plan_bench(&tmp)?);
    }
    if only.as_deref().is_none_or(|o| o == "train") {
        results.extend(train_bench(&python, threads, models.as_deref())?);
    }
    std::fs::remove_dir_all(&tmp).ok();
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Lines measured earlier under other names are kept (a partial run updates its own).
    let mut all: Vec<Value> = std::fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let (cpu, simd) = (cpu_model(), cpu_simd());
    for mut result in results {
        // Every record names the machine it was measured on: ratios differ between CPUs.
        result["cpu"] = json!(cpu);
        result["simd"] = json!(simd);
        all.retain(|r| r["name"] != result["name"]);
        all.push(result);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&all)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}

fn json_of(output: std::process::Output, what: &str) -> anyhow::Result<Value> {
    if !output.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed {text}"))
}
