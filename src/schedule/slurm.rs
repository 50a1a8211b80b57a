//! The SLURM executor: one sbatch job array over the pending cells of a matrix. Each array
//! task runs `agml run-cell <hash> --results DIR` against the shared store, so the store's
//! locks, resume and "done means manifest" rules hold on a cluster as on one machine.
//!
//! A submission leaves, under `<results>/slurm/<id>/`, the job script, `cells.txt` (one hash
//! per array index), the task logs and `submission.json` (job id and hashes); each cell's
//! effective configuration goes to `<results>/queue/<hash>.json` for `run-cell` to read.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::BadInput;
use crate::matrix::PlannedCell;
use crate::store::{RunStore, utc_now, write_atomic};
use crate::train::{Backend, CheckpointEvery};

/// What `--executor slurm` asks of the cluster (also the command line's options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmOptions {
    /// SLURM partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per cell (sbatch --time, e.g. 2:00:00).
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// At most K cells at once (`--array=0-N%K`).
    #[arg(long)]
    pub array_parallelism: Option<usize>,
    /// Seconds before the time limit at which SLURM warns a task with SIGUSR1: the task saves
    /// its state and requeues itself [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub signal_before: Option<u32>,
    /// Requeues of a cell's task that a signal stopped (time limit, preemption) before it is
    /// left interrupted [default: 3].
    #[arg(long)]
    pub max_requeues: Option<u32>,
    /// `run --checkpoint-every`, passed on to each task.
    #[arg(skip)]
    pub checkpoint_every: Option<CheckpointEvery>,
}

/// Seconds of [`SlurmOptions::signal_before`] unless given.
const SIGNAL_BEFORE: u32 = 120;
/// [`SlurmOptions::max_requeues`] unless given.
pub const MAX_REQUEUES: u32 = 3;

/// The record of one submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    pub matrix: String,
    /// The cell of each array index.
    pub hashes: Vec<String>,
    pub submitted_at: String,
}

/// Where SLURM has a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    Queued,
    Running,
}

impl QueueState {
    pub fn label(self) -> &'static str {
        match self {
            QueueState::Queued => "queued",
            QueueState::Running => "running",
        }
    }
}

fn queue_dir(store: &RunStore) -> PathBuf {
    store.root().join("queue")
}

fn slurm_dir(store: &RunStore) -> PathBuf {
    store.root().join("slurm")
}

/// Single-quotes `text` for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The job script of an array over `count` cells listed in `dir/cells.txt`.
fn job_script(
    dir: &Path,
    results: &Path,
    agml: &Path,
    name: &str,
    count: usize,
    backend: Backend,
    options: &SlurmOptions,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut directive = |line: String| writeln!(s, "#SBATCH {line}").expect("string");
    directive(format!("--job-name=agml-{name}"));
    let limit = options
        .array_parallelism
        .map_or(String::new(), |k| format!("%{k}"));
    directive(format!("--array=0-{}{limit}", count - 1));
    directive(format!("--output={}/task-%A_%a.out", dir.display()));
    directive(format!(
        "--cpus-per-task={}",
        options.cpus_per_task.unwrap_or(1)
    ));
    if let Some(p) = &options.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(t) = &options.time {
        directive(format!("--time={t}"));
    }
    if let Some(g) = options.gpus_per_task {
        directive(format!("--gpus-per-task={g}"));
    }
    // The warning before the time limit goes to the task itself (`B:`: the batch shell, which
    // `exec` makes agml); a task stopped by it or by a preemption requeues itself, and its log
    // continues in the same file.
    let before = options.signal_before.unwrap_or(SIGNAL_BEFORE);
    directive(format!("--signal=B:USR1@{before}"));
    directive("--requeue".into());
    directive("--open-mode=append".into());
    let mut task_options = format!(
        " --max-requeues {}",
        options.max_requeues.unwrap_or(MAX_REQUEUES)
    );
    if let Some(every) = options.checkpoint_every {
        write!(task_options, " --checkpoint-every {every}").expect("string");
    }
    // SLURM shows a task only its own GPUs: the first one is its device.
    if options.gpus_per_task.is_some() {
        task_options += " --devices cuda:0";
    }
    let cells = quote(&dir.join("cells.txt").to_string_lossy());
    writeln!(
        s,
        "set -euo pipefail\n\
         hash=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {cells})\n\
         # The backend's threads: the CPUs SLURM gave this task.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         exec {} run-cell \"$hash\" --results {} --backend {backend}{task_options}",
        quote(&agml.to_string_lossy()),
        quote(&results.to_string_lossy()),
    )
    .expect("string");
    s
}

/// Submits `cells` as one job array; returns the submission (its job id from sbatch).
pub fn submit(
    cells: &[&PlannedCell],
    store: &RunStore,
    matrix_name: &str,
    backend: Backend,
    options: &SlurmOptions,
) -> anyhow::Result<Submission> {
    if options.array_parallelism == Some(0) {
        return Err(BadInput::new("--array-parallelism must be at least 1").into());
    }
    if options.cpus_per_task == Some(0) {
        return Err(BadInput::new("--cpus-per-task must be at least 1").into());
    }
    std::fs::create_dir_all(queue_dir(store))?;
    // Array tasks may run anywhere on the cluster: absolute paths only.
    let results = store
        .root()
        .canonicalize()
        .with_context(|| format!("resolving {}", store.root().display()))?;
    let agml = std::env::current_exe().context("locating the agml binary")?;
    for cell in cells {
        let path = queue_dir(store).join(format!("{}.json", cell.hash));
        write_atomic(&path, serde_json::to_string_pretty(cell)?.as_bytes())?;
    }
    let stamp = utc_now().replace([':', '-'], "");
    let dir = results
        .join("slurm")
        .join(format!("{stamp}-{matrix_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let hashes: Vec<String> = cells.iter().map(|c| c.hash.clone()).collect();
    write_atomic(
        &dir.join("cells.txt"),
        (hashes.join("\n") + "\n").as_bytes(),
    )?;
    let script = job_script(
        &dir,
        &results,
        &agml,
        matrix_name,
        cells.len(),
        backend,
        options,
    );
    let script_path = dir.join("job.sh");
    write_atomic(&script_path, script.as_bytes())?;
    let submission = Submission {
        job_id: sbatch(&script_path)?,
        matrix: matrix_name.to_string(),
        hashes,
        submitted_at: utc_now(),
    };
    write_atomic(
        &dir.join("submission.json"),
        serde_json::to_string_pretty(&submission)?.as_bytes(),
    )?;
    Ok(submission)
}

/// Submits the job script at `script_path`; returns its job id.
fn sbatch(script_path: &Path) -> anyhow::Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script_path)
        .output()
        .map_err(|e| {
            BadInput::new(format!(
                "sbatch: cannot run it ({e}); is SLURM installed and on PATH?"
            ))
        })?;
    if !output.status.success() {
        return Err(BadInput::new(format!(
            "sbatch refused {}: {}",
            script_path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
        .into());
    }
    // `--parsable` prints `jobid[;cluster]`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Requeues the array task this process runs in (`scontrol requeue JOB_TASK`), unless it was
/// requeued `max` times already (`SLURM_RESTART_COUNT`); the line to print. `None` outside a
/// SLURM array task.
pub fn requeue_this_task(max: u32) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok();
    let (job, task) = (var("SLURM_ARRAY_JOB_ID")?, var("SLURM_ARRAY_TASK_ID")?);
    let restarts: u32 = var("SLURM_RESTART_COUNT")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let id = format!("{job}_{task}");
    if restarts >= max {
        return Some(format!(
            "not requeued: task {id} was requeued {restarts} times already (--max-requeues \
             {max}); `agml run --executor slurm` submits it again"
        ));
    }
    Some(
        match Command::new("scontrol").args(["requeue", &id]).output() {
            Ok(out) if out.status.success() => {
                format!(
                    "requeued task {id} (requeue {} of at most {max})",
                    restarts + 1
                )
            }
            Ok(out) => format!(
                "scontrol requeue {id} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("scontrol requeue {id}: cannot run it ({e})"),
        },
    )
}

/// The array task (`JOB_TASK`) of the latest submission that holds cell `hash`.
pub fn task_of(store: &RunStore, hash: &str) -> Option<String> {
    submissions(store).iter().rev().find_map(|submission| {
        let task = submission.hashes.iter().position(|h| h == hash)?;
        Some(format!("{}_{task}", submission.job_id))
    })
}

/// How SLURM says array task `id` ended (`OUT_OF_MEMORY (exit 0:125)`, `TIMEOUT`,
/// `NODE_FAIL`, `PREEMPTED`, `FAILED (exit 0:9)`), from `sacct` where accounting is on, else
/// from `scontrol` while the controller still remembers the job; `None` when neither knows or
/// the task is still queued or running.
pub fn end_state(id: &str) -> Option<String> {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (state, exit, reason) = if let Some(text) = run(
        "sacct",
        &["-n", "-P", "-X", "-j", id, "-o", "State,ExitCode,Reason"],
    )
    .filter(|text| !text.trim().is_empty())
    {
        let line = text.lines().last().unwrap_or_default().to_string();
        let mut fields = line.split('|').map(str::to_string);
        let mut next = || fields.next().unwrap_or_default();
        (next(), next(), next())
    } else {
        let text = run("scontrol", &["-o", "show", "job", id])?;
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        (field("JobState"), field("ExitCode"), field("Reason"))
    };
    // `CANCELLED by 0` and the like: the state is the first word.
    let state = state
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if state.is_empty()
        || ["PENDING", "RUNNING", "REQUEUED", "COMPLETING"].contains(&state.as_str())
    {
        return None;
    }
    let mut line = format!("SLURM task {id}: {state}");
    if !exit.is_empty() && exit != "0:0" {
        line += &format!(" (exit {exit})");
    }
    if !reason.is_empty() && reason != "None" {
        line += &format!(", {reason}");
    }
    Some(line)
}

/// The cell `run-cell` was asked for, as the submission stored it.
pub fn queued_cell(store: &RunStore, hash: &str) -> Result<PlannedCell, BadInput> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadInput::new(format!(
            "run-cell {hash}: not a cell hash (64 hex digits)"
        )));
    }
    let path = queue_dir(store).join(format!("{hash}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        BadInput::new(format!(
            "{}: cannot read the queued cell ({e}); `agml run --executor slurm` writes it",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| BadInput::new(format!("{}: not a queued cell: {e}", path.display())))
}

/// Every submission recorded in the store.
pub fn submissions(store: &RunStore) -> Vec<Submission> {
    let Ok(entries) = std::fs::read_dir(slurm_dir(store)) else {
        return Vec::new();
    };
    let mut all: Vec<Submission> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("submission.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    all.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at));
    all
}

/// The cells SLURM holds (queued or running) among the store's submissions, by hash; `None`
/// when squeue cannot be asked (no SLURM here).
pub fn queue_states(store: &RunStore) -> Option<HashMap<String, QueueState>> {
    let submissions = submissions(store);
    let mut states = HashMap::new();
    if submissions.is_empty() {
        return Some(states);
    }
    let ids: Vec<&str> = submissions.iter().map(|s| s.job_id.as_str()).collect();
    let output = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i|%T", "-j", &ids.join(",")])
        .output()
        .ok()?;
    // squeue exits 1 when every listed job has left the queue: nothing queued, not an error.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let by_id: HashMap<&str, &Submission> =
        submissions.iter().map(|s| (s.job_id.as_str(), s)).collect();
    for line in stdout.lines() {
        let Some((id, state)) = line.split_once('|') else {
            continue;
        };
        let Some((job, task)) = id.split_once('_') else {
            continue;
        };
        let (Some(submission), Ok(task)) = (by_id.get(job), task.parse::<usize>()) else {
            continue;
        };
        let Some(hash) = submission.hashes.get(task) else {
            continue;
        };
        let state = match state {
            "PENDING" | "REQUEUED" | "SUSPENDED" => QueueState::Queued,
            "RUNNING" | "CONFIGURING" | "COMPLETING" => QueueState::Running,
            _ => continue,
        };
        states.insert(hash.clone(), state);
    }
    Some(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_script_runs_one_cell_per_array_index() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("2:00:00".into()),
            gpus_per_task: Some(1),
            cpus_per_task: Some(4),
            array_parallelism: Some(3),
            signal_before: Some(300),
            max_requeues: None,
            checkpoint_every: Some(CheckpointEvery::Minutes(10.0)),
        };
        let script = job_script(
            Path::new("/r/slurm/x"),
            Path::new("/r"),
            Path::new("/bin/it's agml"),
            "paper",
            10,
            Backend::Flex,
            &options,
        );
        for line in [
            "#SBATCH --job-name=agml-paper",
            "#SBATCH --array=0-9%3",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=2:00:00",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --output=/r/slurm/x/task-%A_%a.out",
            "#SBATCH --signal=B:USR1@300",
            "#SBATCH --requeue",
            "#SBATCH --open-mode=append",
        ] {
            assert!(script.contains(line), "{line} in\n{script}");
        }
        assert!(script.contains(r"exec '/bin/it'\''s agml' run-cell"));
        assert!(script.contains(
            "--results '/r' --backend flex --max-requeues 3 --checkpoint-every 10m --devices cuda:0"
        ));
        assert!(
            script.contains(r#"sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" '/r/slurm/x/cells.txt'"#)
        );
    }
}
