//! `agml status MATRIX`: counts by state, SLURM's view of unfinished cells, failures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agml::matrix::{CellFilter, Matrix};
use agml::schedule::slurm::{self, QueueState};
use agml::schedule::{PlanEntry, plan};
use agml::store::{RunState, RunStore, utc_now};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    matrix: super::MatrixArg,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Print a line whenever the counts change (checked every SECONDS, default 10) until no
    /// cell is queued, running or training: a job array's progress without squeue.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "10")]
    watch: Option<u64>,
}

/// SLURM's state of a cell the store does not have finished.
fn on_slurm(queue: &HashMap<String, QueueState>, entry: &PlanEntry) -> Option<QueueState> {
    match entry.state {
        RunState::Done(_) => None,
        _ => queue.get(&entry.cell.hash).copied(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let matrix = args.matrix.load()?;
    let store = RunStore::new(&args.results);
    if let Some(seconds) = args.watch {
        return watch(&matrix, &store, Duration::from_secs(seconds.max(1)));
    }
    let (entries, queue) = current(&matrix, &store)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&entries, &queue))?);
    } else {
        print_text(&matrix, &entries, &queue);
    }
    Ok(ExitCode::SUCCESS)
}

/// `status --watch`: a line with the time, the counts and SLURM's share whenever they change,
/// until nothing is queued, running or training; then the failed and interrupted cells, as
/// `status` lists them.
fn watch(matrix: &Matrix, store: &RunStore, every: Duration) -> anyhow::Result<ExitCode> {
    let mut last = String::new();
    loop {
        let (entries, queue) = current(matrix, store)?;
        let (queued, running) = slurm_counts(&entries, &queue);
        let mut line = super::counts_line(matrix, entries.iter().map(|e| &e.state));
        if queued + running > 0 {
            line += &format!("; on SLURM: {queued} queued, {running} running");
        }
        if line != last {
            println!("{} {line}", &utc_now()[11..19]);
            last = line;
        }
        let training = entries.iter().any(|e| e.state == RunState::Training);
        if queued + running == 0 && !training {
            entries.iter().for_each(print_unfinished);
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(every);
    }
}

/// The plan of every cell, after the deaths SLURM reports are recorded, and what SLURM holds
/// (nothing without SLURM).
fn current<'a>(
    matrix: &'a Matrix,
    store: &RunStore,
) -> anyhow::Result<(Vec<PlanEntry<'a>>, HashMap<String, QueueState>)> {
    let queue = slurm::queue_states(store).unwrap_or_default();
    let mut entries = plan(matrix, &CellFilter::default(), store);
    if record_slurm_deaths(&entries, store, &queue)? {
        entries = plan(matrix, &CellFilter::default(), store);
    }
    Ok((entries, queue))
}

/// (queued, running) cells on SLURM among those the store has not finished.
fn slurm_counts(entries: &[PlanEntry], queue: &HashMap<String, QueueState>) -> (usize, usize) {
    let count = |state| {
        entries
            .iter()
            .filter(|e| on_slurm(queue, e) == Some(state))
            .count()
    };
    (count(QueueState::Queued), count(QueueState::Running))
}

/// Stores what SLURM says ended the task of each interrupted cell it no longer holds
/// (OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, ...) as the run's failure: its accounting forgets, the
/// store keeps it. `run` retries the cell from its saved state as any failed one. True when it
/// recorded any.
fn record_slurm_deaths(
    entries: &[PlanEntry],
    store: &RunStore,
    queue: &HashMap<String, QueueState>,
) -> anyhow::Result<bool> {
    let mut recorded = false;
    for entry in entries {
        let RunState::Interrupted { epochs_done } = entry.state else {
            continue;
        };
        let hash = &entry.cell.hash;
        if queue.contains_key(hash) {
            continue;
        }
        let Some(cause) = slurm::task_of(store, hash).and_then(|id| slurm::end_state(&id)) else {
            continue;
        };
        // Only while no process writes the run.
        let Some(_lock) = store.try_lock(hash)? else {
            continue;
        };
        let epochs = entry.cell.config.train.epochs;
        store.begin(hash)?.fail(&format!(
            "interrupted after epoch {epochs_done} of {epochs}: {cause}"
        ))?;
        recorded = true;
    }
    Ok(recorded)
}

fn json(entries: &[PlanEntry], queue: &HashMap<String, QueueState>) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for label in [
        "done",
        "pending",
        "failed",
        "stale",
        "training",
        "interrupted",
    ] {
        let n = entries.iter().filter(|e| e.state.label() == label).count();
        counts.insert(label.into(), n.into());
    }
    let (queued, running) = slurm_counts(entries, queue);
    counts.insert(QueueState::Queued.label().into(), queued.into());
    counts.insert(QueueState::Running.label().into(), running.into());
    let cells: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut value = e.to_json();
            if let Some(state) = on_slurm(queue, e) {
                value["slurm"] = state.label().into();
            }
            value
        })
        .collect();
    counts.insert("cells".into(), cells.into());
    serde_json::Value::Object(counts)
}

fn print_text(matrix: &Matrix, entries: &[PlanEntry], queue: &HashMap<String, QueueState>) {
    println!(
        "{}",
        super::counts_line(matrix, entries.iter().map(|e| &e.state))
    );
    let (queued, running) = slurm_counts(entries, queue);
    if queued + running > 0 {
        println!("on SLURM: {queued} queued, {running} running");
    }
    for entry in entries {
        if let Some(state) = on_slurm(queue, entry) {
            let (hash, values) = (&entry.cell.hash[..12], &entry.cell.values);
            println!("{:<8} {hash}  {values}", state.label());
        }
        print_unfinished(entry);
    }
}

/// The line of a failed or interrupted cell.
fn print_unfinished(entry: &PlanEntry) {
    let (hash, values) = (&entry.cell.hash[..12], &entry.cell.values);
    match &entry.state {
        RunState::Failed(failure) => println!("failed {hash}  {values}: {}", failure.reason),
        RunState::Interrupted { epochs_done } => println!(
            "interrupted {hash}  {values}: after epoch {epochs_done} of {}, its process \
             gone without a word (killed, out of memory?); `agml run` resumes it",
            entry.cell.config.train.epochs
        ),
        _ => {}
    }
}
