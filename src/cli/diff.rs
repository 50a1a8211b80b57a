//! `agml diff HASH_A HASH_B`: two runs side by side, the settings that differ and the metric
//! deltas.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::report::run_detail::{RunDetail, RunDiff};
use agml::store::RunStore;

#[derive(clap::Args)]
pub struct Args {
    /// The first run: at least 6 hex digits of its hash.
    a: String,
    /// The second run.
    b: String,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// One JSON object: a, b (hashes), settings [{key, a, b}], metrics [{set, metric, a, b,
    /// delta}] (fractions).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = RunStore::new(&args.results);
    let [a, b] = [&args.a, &args.b].map(|prefix| store.find_run(prefix));
    let (a, b) = (RunDetail::read(&store, &a?)?, RunDetail::read(&store, &b?)?);
    let diff = RunDiff::between(&a, &b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diff)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (name, run) in [("A", &a), ("B", &b)] {
        println!(
            "{name} {}  {} ({})",
            &run.hash[..12],
            run.values,
            run.status
        );
    }
    if diff.settings.is_empty() {
        println!("the same settings");
    } else {
        println!("settings (A -> B):");
        for change in &diff.settings {
            println!("    {}", change.arrow());
        }
    }
    let mut set = "";
    for m in &diff.metrics {
        if m.set != set {
            set = &m.set;
            println!("{set} metrics (A -> B, percent):");
        }
        println!(
            "    {:<12} {:>6.2} -> {:>6.2} ({:+.2})",
            m.metric,
            m.a * 100.0,
            m.b * 100.0,
            m.delta * 100.0
        );
    }
    if diff.metrics.is_empty() {
        println!("no metrics in both (a run is not done)");
    }
    Ok(ExitCode::SUCCESS)
}
