//! The evaluation lines: agml's retrieval and clustering metrics against pytorch-metric-learning's
//! AccuracyCalculator (faiss), on the k-NN, SOP and In-Shop shapes, each side in a process of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use agml::eval::npy::{f32_npy, i64_npy};
use agml::eval::retrieval_metrics;
use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::json_of;

const EVAL_POINTS: usize = 60_000;
const EVAL_DIM: usize = 512;
/// 500 classes of 120: R = 119, a mid-size retrieval test set.
const EVAL_CLASSES: usize = 500;

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
pub(crate) fn print_data(kind: &str, dir: &Path) -> anyhow::Result<()> {
    let write = if kind == "eval-data" {
        eval_data
    } else {
        sop_data
    };
    let (e, l) = write(dir)?;
    println!("{} {}", e.display(), l.display());
    Ok(())
}

pub(crate) fn eval_child(args: &[String]) -> anyhow::Result<()> {
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

pub(crate) fn cluster_child(embeddings: &Path, labels: &Path) -> anyhow::Result<()> {
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

/// One evaluation line: what it evaluates and how.
struct EvalLine {
    name: String,
    /// What the caption says the embeddings are.
    what: String,
    /// NMI and F1 too (k-means with k = the classes), against AccuracyCalculator's NMI.
    clustering: bool,
}

pub(crate) fn eval_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
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

pub(crate) fn eval_sop_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
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

pub(crate) fn eval_inshop_bench(dir: &Path, python: &str, threads: usize) -> anyhow::Result<Value> {
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

/// A number of a child's JSON, NaN when it is missing.
fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}
