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
use std::process::Command;
use std::time::Instant;

use agml::data::{ImageFile, ImageSet, Images, Transform, View};
use agml::eval::npy::{f32_npy, i64_npy};
use agml::eval::retrieval_metrics;
use agml::schedule::machine::{cpu_model, cpu_simd};
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const EVAL_POINTS: usize = 60_000;
const EVAL_DIM: usize = 512;
/// 500 classes of 120: R = 119, a mid-size retrieval test set.
const EVAL_CLASSES: usize = 500;
const LOADER_IMAGES: usize = 96;
const STEP_BATCH: usize = 32;

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

/// Peak resident set size of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Unit vectors and their classes, as a benchmark writes them.
#[derive(Default)]
struct UnitRows {
    data: Vec<f32>,
    labels: Vec<i64>,
}

impl UnitRows {
    /// Adds `centre` plus uniform noise within +-`spread` in each value, normalised to unit
    /// length, as an item of `class`.
    fn push(&mut self, centre: &[f32], spread: f32, class: usize, rng: &mut ChaCha8Rng) {
        let row: Vec<f32> = centre
            .iter()
            .map(|c| c + rng.random_range(-spread..spread))
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        self.data.extend(row.iter().map(|v| v / norm));
        self.labels.push(class as i64);
    }

    /// Writes `<stem>E.npy` (float32 `[n, EVAL_DIM]`) and `<stem>L.npy` (int64 `[n]`) in `dir`.
    fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let n = self.labels.len();
        let (e, l) = (
            dir.join(format!("{stem}E.npy")),
            dir.join(format!("{stem}L.npy")),
        );
        std::fs::write(&e, f32_npy(&self.data, &[n, EVAL_DIM]))?;
        std::fs::write(&l, i64_npy(&self.labels, &[n]))?;
        Ok((e, l))
    }
}

/// Clustered unit vectors: class centres plus noise, so retrieval is neither trivial nor hopeless.
fn eval_data(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut rng = ChaCha8Rng::seed_from_u64(60_000);
    let centres: Vec<f32> = (0..EVAL_CLASSES * EVAL_DIM)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut rows = UnitRows::default();
    for i in 0..EVAL_POINTS {
        let class = i % EVAL_CLASSES;
        let centre = &centres[class * EVAL_DIM..(class + 1) * EVAL_DIM];
        rows.push(centre, 3.0, class, &mut rng);
    }
    rows.write(dir, "")
}

/// agml's side of an evaluation line: retrieval metrics (leave-one-out, or against the
/// gallery `G.npy GL.npy` when given), and with `all` NMI and F1 of the queries too.
/// Writes the retrieval line's embeddings (`eval-data`) or the SOP-shaped ones (`sop-data`) into
/// `dir` and prints their paths.
fn print_data(kind: &str, dir: &Path) -> anyhow::Result<()> {
    let write = if kind == "eval-data" {
        eval_data
    } else {
        sop_data
    };
    let (e, l) = write(dir)?;
    println!("{} {}", e.display(), l.display());
    Ok(())
}

fn eval_child(args: &[String]) -> anyhow::Result<()> {
    let read = |e: &String, l: &String| -> anyhow::Result<(Vec<f32>, usize, Vec<usize>)> {
        let (data, dim) = agml::eval::evaluate::read_embeddings(Path::new(e))?;
        let raw = agml::eval::evaluate::read_labels(Path::new(l))?;
        Ok((data, dim, raw.iter().map(|&l| l as usize).collect()))
    };
    let [embeddings, labels, ..] = args else {
        anyhow::bail!("usage: bench eval-child E.npy L.npy [all [G.npy GL.npy]]");
    };
    let (data, dim, labels) = read(embeddings, labels)?;
    let all = args.get(2).is_some_and(|a| a == "all");
    let gallery = match (args.get(3), args.get(4)) {
        (Some(g), Some(gl)) => Some(read(g, gl)?),
        _ => None,
    };
    let start = Instant::now();
    let mut metrics = match &gallery {
        None => retrieval_metrics(&data, dim, &labels, &[1]),
        Some((g, _, gl)) => agml::eval::query_gallery_metrics(
            agml::eval::Vectors::new(&data, dim),
            &labels,
            agml::eval::Vectors::new(g, dim),
            gl,
            &[1],
        ),
    };
    if all {
        let seed = agml::eval::evaluate::CLUSTER_SEED;
        metrics.extend(agml::eval::clustering_metrics(&data, dim, &labels, seed));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "values": metrics,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}

fn cluster_child(embeddings: &Path, labels: &Path) -> anyhow::Result<()> {
    let (data, dim) = agml::eval::evaluate::read_embeddings(embeddings)?;
    let raw = agml::eval::evaluate::read_labels(labels)?;
    let labels: Vec<usize> = raw.iter().map(|&l| l as usize).collect();
    let mut classes = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    let start = Instant::now();
    let clustering = agml::eval::kmeans(&data, dim, classes.len(), 0);
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "inertia": clustering.inertia,
            "iterations": clustering.iterations,
            "nmi": agml::eval::cluster::nmi(&clustering.assignment, &labels),
            "f1": agml::eval::cluster::pairwise_f1(&clustering.assignment, &labels),
            "peak_rss_mib": peak_rss_mib(),
        })
    );
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

/// One evaluation line: what it evaluates and how.
struct EvalLine {
    name: String,
    /// What the caption says the embeddings are.
    what: String,
    /// NMI and F1 too (k-means with k = the classes), against AccuracyCalculator's NMI.
    clustering: bool,
}

fn eval_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
    let line = EvalLine {
        name: format!("eval/knn-{EVAL_POINTS}x{EVAL_DIM}"),
        what: format!("{EVAL_CLASSES} classes"),
        clustering: false,
    };
    let (e, l) = eval_data(dir)?;
    eval_line(&line, &[e, l], python, threads)
}

/// Classes and images of SOP's test split (Ebay_test.txt): 60,502 images of 11,316 products.
const SOP_IMAGES: usize = 60_502;
const SOP_CLASSES: usize = 11_316;

/// SOP-shaped unit vectors: 11,316 classes of 2-12 images (60,502 in all), a centre per class
/// plus noise.
fn sop_data(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut rng = ChaCha8Rng::seed_from_u64(SOP_IMAGES as u64);
    let mut sizes: Vec<usize> = (0..SOP_CLASSES).map(|_| rng.random_range(2..=9)).collect();
    // Nudge random classes, within 2..=12, until the sizes add up to SOP's image count.
    let mut total: usize = sizes.iter().sum();
    while total != SOP_IMAGES {
        let c = rng.random_range(0..SOP_CLASSES);
        if total < SOP_IMAGES && sizes[c] < 12 {
            (sizes[c], total) = (sizes[c] + 1, total + 1);
        } else if total > SOP_IMAGES && sizes[c] > 2 {
            (sizes[c], total) = (sizes[c] - 1, total - 1);
        }
    }
    let mut rows = UnitRows::default();
    for (class, &size) in sizes.iter().enumerate() {
        let centre: Vec<f32> = (0..EVAL_DIM)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        for _ in 0..size {
            rows.push(&centre, 1.0, class, &mut rng);
        }
    }
    rows.write(dir, "sop-")
}

fn eval_sop_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
    let line = EvalLine {
        name: format!("eval/sop-{SOP_IMAGES}x{EVAL_DIM}"),
        what: format!("{SOP_CLASSES} classes of 2-12, every metric incl. NMI and F1"),
        clustering: true,
    };
    let (e, l) = sop_data(dir)?;
    eval_line(&line, &[e, l], python, threads)
}

/// In-Shop's evaluation split (list_eval_partition.txt): 14,218 queries and 12,612 gallery
/// images of 3,985 items.
const INSHOP_QUERIES: usize = 14_218;
const INSHOP_GALLERY: usize = 12_612;
const INSHOP_CLASSES: usize = 3_985;

/// `counts` classes' sizes, each at least 1, adding up to `total`.
fn class_sizes(rng: &mut ChaCha8Rng, classes: usize, total: usize) -> Vec<usize> {
    let mut sizes = vec![1usize; classes];
    for _ in classes..total {
        sizes[rng.random_range(0..classes)] += 1;
    }
    sizes
}

/// In-Shop-shaped unit vectors: a centre per item, its query and gallery images around it.
fn inshop_data(dir: &Path) -> anyhow::Result<[PathBuf; 4]> {
    let mut rng = ChaCha8Rng::seed_from_u64(INSHOP_QUERIES as u64);
    let queries = class_sizes(&mut rng, INSHOP_CLASSES, INSHOP_QUERIES);
    let gallery = class_sizes(&mut rng, INSHOP_CLASSES, INSHOP_GALLERY);
    let centres: Vec<f32> = (0..INSHOP_CLASSES * EVAL_DIM)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut files = Vec::new();
    for (part, sizes) in [("query", &queries), ("gallery", &gallery)] {
        let mut rows = UnitRows::default();
        for (class, &size) in sizes.iter().enumerate() {
            let centre = &centres[class * EVAL_DIM..(class + 1) * EVAL_DIM];
            for _ in 0..size {
                rows.push(centre, 1.0, class, &mut rng);
            }
        }
        let (e, l) = rows.write(dir, &format!("{part}-"))?;
        files.extend([e, l]);
    }
    Ok(files.try_into().expect("four files"))
}

fn eval_inshop_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
    let line = EvalLine {
        name: format!("eval/inshop-{INSHOP_QUERIES}x{INSHOP_GALLERY}x{EVAL_DIM}"),
        what: format!(
            "{INSHOP_CLASSES} items, queries against the gallery, every metric incl. NMI and F1"
        ),
        clustering: true,
    };
    let files = inshop_data(dir)?;
    eval_line(&line, &files, python, threads)
}

/// A number of a child's JSON, NaN when it is missing.
fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// `files`: embeddings and labels, then (query vs gallery) the gallery's embeddings and labels.
fn eval_line(
    line: &EvalLine,
    files: &[PathBuf],
    python: &str,
    threads: usize,
) -> anyhow::Result<Value> {
    let name = &line.name;
    println!("{name}: embeddings written ({})", line.what);
    let me = std::env::current_exe()?;
    let mode = if line.clustering { "all" } else { "retrieval" };
    let (data, gallery) = files.split_at(2);
    let ours = json_of(
        Command::new(&me)
            .arg("eval-child")
            .args(data)
            .arg(mode)
            .args(gallery)
            .env("RAYON_NUM_THREADS", threads.to_string())
            .output()?,
        "agml's evaluation",
    )?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reference/accuracy_calculator.py");
    let reference = json_of(
        Command::new(python)
            .arg(&script)
            .args(data)
            .arg(threads.to_string())
            .arg(mode)
            .args(gallery)
            .output()
            .with_context(|| format!("running {python} (make bench-env installs it)"))?,
        "AccuracyCalculator",
    )?;
    let difference =
        |key: &str| (number(&ours["values"][key]) - number(&reference["values"][key])).abs();
    let max_diff = ["recall@1", "r_precision", "map@r"]
        .map(difference)
        .into_iter()
        .fold(0f64, f64::max);
    let nmi_diff = line.clustering.then(|| difference("nmi"));
    let (ours_s, ref_s) = (number(&ours["seconds"]), number(&reference["seconds"]));
    let ratio = ours_s / ref_s;
    println!(
        "{name}: agml {ours_s:.2} s (peak RSS {:.0} MiB), AccuracyCalculator+faiss {ref_s:.2} s \
         (peak RSS {:.0} MiB): ratio {ratio:.3} (target <= 0.5); values differ by at most {max_diff:.1e}",
        number(&ours["peak_rss_mib"]),
        number(&reference["peak_rss_mib"]),
    );
    if max_diff > 1e-6 {
        println!("{name}: WARNING values differ by more than 1e-6");
    }
    if let Some(diff) = nmi_diff {
        println!("{name}: NMI differs from AccuracyCalculator's by {diff:.4} (bound 0.01)");
    }
    Ok(json!({
        "name": name,
        "nmi_difference": nmi_diff,
        "agml_seconds": ours_s,
        "reference": if line.clustering {
            "pytorch-metric-learning 2.9 AccuracyCalculator + faiss-cpu, k=max_bin_count, with NMI (faiss.Kmeans niter=20)"
        } else {
            "pytorch-metric-learning 2.9 AccuracyCalculator + faiss-cpu, k=max_bin_count"
        },
        "reference_seconds": ref_s,
        "ratio": ratio,
        "threads": threads,
        "agml_peak_rss_mib": ours["peak_rss_mib"],
        "reference_peak_rss_mib": reference["peak_rss_mib"],
        // faiss's BLAS kernels: the reference's speed depends on which it runs.
        "reference_blas": reference["blas_core"],
        "max_value_difference": max_diff,
        "date": agml::store::utc_now(),
    }))
}

/// A CUB-like photo: 500 x 375, smooth colours plus texture (so JPEG decoding does real work).
fn write_jpegs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut rng = ChaCha8Rng::seed_from_u64(224);
    let mut paths = Vec::new();
    for i in 0..LOADER_IMAGES {
        let (a, b): (f32, f32) = (rng.random_range(0.01..0.05), rng.random_range(0.01..0.05));
        let image = image::RgbImage::from_fn(500, 375, |x, y| {
            let (x, y) = (x as f32, y as f32);
            let noise = ((x * 12.9898 + y * 78.233).sin() * 43758.547).fract() * 40.0;
            image::Rgb([
                (128.0 + 100.0 * (a * x).sin() + noise) as u8,
                (128.0 + 100.0 * (b * y).cos() + noise) as u8,
                (128.0 + 60.0 * (a * x + b * y).sin()) as u8,
            ])
        });
        let path = dir.join(format!("{i:03}.jpg"));
        image.save(&path)?;
        paths.push(path);
    }
    Ok(paths)
}

fn loader_bench(dir: &Path, threads: usize) -> anyhow::Result<Value> {
    let name = "loader/jpeg-224";
    let paths = write_jpegs(dir)?;
    let set = ImageSet {
        images: Images::Files {
            files: paths.iter().cloned().map(ImageFile::whole).collect(),
            transform: Transform::default(),
        },
        labels: vec![0; paths.len()],
        class_ids: vec![0],
        channels: 3,
        height: 224,
        width: 224,
    };
    let indices: Vec<usize> = (0..paths.len()).collect();
    let start = Instant::now();
    for (b, batch) in indices.chunks(STEP_BATCH).enumerate() {
        let view = View::Train {
            seed: 0,
            epoch: 0,
            position: b * STEP_BATCH,
        };
        set.batch(batch, view)?;
    }
    let per_image = start.elapsed().as_secs_f64() / paths.len() as f64;
    println!(
        "{name}: {:.0} images/s; timing one ResNet-50 training step...",
        1.0 / per_image
    );
    let flex = std::env::current_exe()?.with_file_name("train_step_bench");
    let step = train_step_seconds(&flex, "resnet50", 224, 1, "flex", threads)?;
    let step_per_image = step / STEP_BATCH as f64;
    let ratio = per_image / step_per_image;
    println!(
        "{name}: loader {:.1} images/s, ResNet-50 + attentive flex training step {:.2} images/s: \
         ratio {ratio:.4} (target <= 0.5)",
        1.0 / per_image,
        1.0 / step_per_image
    );
    Ok(json!({
        "name": name,
        "agml_seconds": per_image,
        "reference": "seconds per image of an agml flex training step, ResNet-50 + attentive, 224x224, batch 32",
        "reference_seconds": step_per_image,
        "ratio": ratio,
        "date": agml::store::utc_now(),
    }))
}

/// 5 group counts x 5 losses x 40 seeds of attentive grouping on synthetic images.
const PLAN_MATRIX: &str = r#"name = "plan-bench"
[axes]
dataset = ["synthetic"]
backbone = ["convnet-small"]
head = ["attentive"]
loss = ["margin", "multi-similarity", "proxy-anchor", "contrastive", "triplet"]
groups = [1, 2, 4, 8, 16]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39]
[defaults]
batch_size = 8
samples_per_class = 2
"#;

fn plan_bench(dir: &Path) -> anyhow::Result<Value> {
    let name = "plan/1000-cells";
    let matrix_path = dir.join("plan-bench.toml");
    std::fs::write(&matrix_path, PLAN_MATRIX)?;
    let matrix = agml::matrix::Matrix::load(&matrix_path)?;
    anyhow::ensure!(matrix.cells.len() == 1000, "{} cells", matrix.cells.len());
    // Every cell done: a stored run with a manifest (and one small artifact).
    let results = dir.join("plan-results");
    let store = agml::store::RunStore::new(&results);
    for cell in &matrix.cells {
        let mut writer = store.begin(&cell.hash)?;
        writer.write(agml::store::RunFile::Metrics, b"{}")?;
        writer.finish(
            agml::train::SEMANTICS,
            agml::store::Provenance {
                agml_version: env!("CARGO_PKG_VERSION").into(),
                git_commit: None,
                git_dirty: None,
                backend: "flex".into(),
                device: "cpu".into(),
                host: "bench".into(),
                threads: 1,
                data_root: String::new(),
                data_table: None,
                started: agml::store::utc_now(),
                finished: agml::store::utc_now(),
                wall_seconds: 0.0,
                machine: None,
            },
        )?;
    }
    let agml = std::env::current_exe()?.with_file_name("agml");
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let output = Command::new(&agml)
            .arg("plan")
            .arg(&matrix_path)
            .arg("--results")
            .arg(&results)
            .output()
            .with_context(|| format!("running {}", agml.display()))?;
        times.push(start.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success() && text.contains("1000 done"),
            "agml plan: {text}"
        );
    }
    // The median of three.
    times.sort_by(f64::total_cmp);
    let seconds = times[1];
    println!("{name}: agml plan {seconds:.3} s (target < 1 s): ratio {seconds:.3}");
    Ok(json!({
        "name": name,
        "agml_seconds": seconds,
        "reference": "the 1 s target of `agml plan` on 1000 finished cells",
        "reference_seconds": 1.0,
        "ratio": seconds,
        "date": agml::store::utc_now(),
    }))
}

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
fn train_step_seconds(
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
const TRAIN_MODELS: [(&str, usize, usize); 3] = [
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
fn train_bench(
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
