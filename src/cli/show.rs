//! `agml show HASH_PREFIX`: one run as the store holds it.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::report::run_detail::RunDetail;
use agml::store::{Provenance, RunStore};

#[derive(clap::Args)]
pub struct Args {
    /// The run: at least 6 hex digits of its hash (`plan` and `status` print 12).
    hash: String,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// One JSON object: hash, status, values, semantics, cell, metrics, provenance, failure,
    /// epochs_done, history_epochs, files.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = RunStore::new(&args.results);
    let run = RunDetail::read(&store, &store.find_run(&args.hash)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {}\n    {}", run.hash, run.values);
    println!("{:<10} {}", "state", state(&run));
    for set in ["test", "val"] {
        let line = metrics_line(&run.metrics_of(set));
        if !line.is_empty() {
            println!("{set:<10} {line}");
        }
    }
    if let Some(metrics) = &run.metrics {
        println!(
            "{:<10} epoch {} of {} by {} ({} protocol)",
            "selected",
            metrics["selected_epoch"],
            run.history_epochs,
            metrics["selection_metric"].as_str().unwrap_or("?"),
            metrics["protocol"].as_str().unwrap_or("?")
        );
    }
    if let Some(provenance) = &run.provenance {
        print_provenance(provenance);
    }
    println!("settings   (cell.toml)");
    for (key, value) in &run.settings {
        println!("    {key} = {value}");
    }
    let (here, absent): (Vec<_>, Vec<_>) = run.files.iter().partition(|f| f.bytes.is_some());
    let total: u64 = here.iter().filter_map(|f| f.bytes).sum();
    let files: Vec<String> = (here.iter())
        .map(|f| format!("{} {}", f.name, super::size(f.bytes.unwrap_or(0))))
        .collect();
    println!(
        "files      {} ({} in all)",
        files.join(", "),
        super::size(total)
    );
    if !absent.is_empty() {
        let names: Vec<&str> = absent.iter().map(|f| f.name.as_str()).collect();
        println!("not here   {} (listed in the manifest)", names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The state with what explains it.
fn state(run: &RunDetail) -> String {
    match (run.status, &run.failure, run.epochs_done, run.semantics) {
        ("failed", Some(f), _, _) => format!("failed at {}: {}", f.at, f.reason),
        ("interrupted", _, Some(epochs), _) => format!(
            "interrupted after epoch {epochs} of {} (no process holds it; `agml run` resumes it)",
            run.settings
                .get("train.epochs")
                .map_or("?".into(), |e| e.to_string())
        ),
        ("stale", _, _, Some(version)) => format!(
            "stale: made under training semantics {version}, agml now computes {} (`agml run --rerun-stale` redoes it)",
            agml::train::SEMANTICS
        ),
        ("done", _, _, Some(version)) => format!("done (training semantics {version})"),
        (status, _, _, _) => status.to_string(),
    }
}

/// `recall@1 87.00  map@r 37.25 ...`, in percent.
fn metrics_line(metrics: &[(String, f64)]) -> String {
    let parts: Vec<String> = (metrics.iter())
        .map(|(name, value)| format!("{name} {:.2}", value * 100.0))
        .collect();
    parts.join("  ")
}

fn print_provenance(p: &Provenance) {
    let commit = match (&p.git_commit, p.git_dirty) {
        (Some(commit), dirty) => {
            let dirty = if dirty == Some(true) {
                " with uncommitted changes"
            } else {
                ""
            };
            format!(" at {}{dirty}", &commit[..12.min(commit.len())])
        }
        (None, _) => String::new(),
    };
    println!(
        "{:<10} {} to {} ({:.1} s) by agml {}{commit}",
        "made", p.started, p.finished, p.wall_seconds, p.agml_version
    );
    println!(
        "{:<10} {} on {}, host {}, {} threads",
        "backend", p.backend, p.device, p.host, p.threads
    );
    if let Some(m) = &p.machine {
        let kernels: Vec<String> = m.kernels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "{:<10} {} ({}); {}",
            "machine",
            m.cpu,
            m.cpu_simd,
            kernels.join(", ")
        );
    }
    let table = p
        .data_table
        .as_ref()
        .map_or(String::new(), |t| format!(", table {t}"));
    println!("{:<10} {}{table}", "data", p.data_root);
}
