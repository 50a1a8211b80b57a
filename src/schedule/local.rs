//! The local executor: runs cells on this machine, `--jobs` at a time.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::Device;
use rayon::prelude::*;

use super::provenance::Origin;
use super::stop;
use crate::data::Splits;
use crate::error::BadInput;
use crate::matrix::PlannedCell;
use crate::matrix::hash::canonical_json;
use crate::progress::Progress;
use crate::store::{RunFile, RunStore, STATE_DIR, utc_now};
use crate::train::artifacts::write_outcome;
use crate::train::{Backend, CheckpointEvery, Checkpoints, SEMANTICS, Stopped, train_run};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub backend: Backend,
    /// Cells trained at the same time.
    pub jobs: usize,
    /// Devices by name (`cpu`, `cuda:0`, ...), each training one cell at a time; empty: the
    /// backend's CPU device shared by `jobs` cells.
    pub devices: Vec<String>,
    /// Redo cells that are done (otherwise a cell another process finished meanwhile is skipped).
    pub force: bool,
    /// Further attempts at a cell that failed.
    pub retries: usize,
    /// Saves of the state within epochs (besides after each and on a stop signal).
    pub checkpoint_every: Option<CheckpointEvery>,
}

/// What a `run` did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub trained: Vec<String>,
    /// (hash, reason) of each cell that failed.
    pub failed: Vec<(String, String)>,
    /// (hash, reason) of each cell left to another process.
    pub skipped: Vec<(String, String)>,
    /// (hash, line) of the cell a signal stopped, its state saved; and the signal.
    pub stopped: Vec<(String, String)>,
    pub signal: Option<usize>,
}

/// The devices cells train on, each with its provenance: with `--devices`, one cell per device
/// at a time; without, `jobs` slots of the backend's CPU device, whose provenance is detected
/// once.
fn device_pool(options: &RunOptions) -> Result<Vec<(Device, Origin)>, BadInput> {
    if options.devices.is_empty() {
        let device = options.backend.device()?;
        let origin = Origin::detect(options.backend, &device);
        return Ok(vec![(device, origin); options.jobs.max(1)]);
    }
    options
        .devices
        .iter()
        .map(|name| {
            let device = options.backend.device_named(name)?;
            let origin = Origin::detect(options.backend, &device);
            Ok((device, origin))
        })
        .collect()
}

impl RunSummary {
    /// Logs and records what became of `cell`.
    fn add(&mut self, cell: &PlannedCell, result: Result<CellResult, String>) {
        let (hash, values) = (cell.hash.clone(), &cell.values);
        match result {
            Ok(CellResult::Trained) => {
                tracing::info!("done   {} {values}", &hash[..12]);
                self.trained.push(hash);
            }
            Ok(CellResult::Skipped(reason)) => {
                tracing::info!("skip   {} {values}: {reason}", &hash[..12]);
                self.skipped.push((hash, reason));
            }
            Ok(CellResult::Stopped(line)) => {
                tracing::warn!("stop   {} {values}: {line}", &hash[..12]);
                self.stopped.push((hash, line));
            }
            Err(reason) => {
                tracing::error!("failed {} {values}: {reason}", &hash[..12]);
                self.failed.push((hash, reason));
            }
        }
    }
}

/// Trains `cells` into `store`. Every dataset is loaded (and so checked) before any training,
/// so a missing or malformed dataset stops the run with nothing trained.
pub fn run_cells(
    cells: &[&PlannedCell],
    store: &RunStore,
    options: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<RunSummary> {
    let pool = device_pool(options)?;
    let jobs = pool.len();
    let free = Mutex::new(pool);
    let datasets = load_datasets(cells)?;

    let cells_bar = progress.cells(cells.len());
    let summary = Mutex::new(RunSummary::default());
    let run = |cell: &&PlannedCell| {
        if let Some(signal) = stop::signal() {
            let reason = format!("not started: {} asked the run to stop", stop::name(signal));
            summary
                .lock()
                .expect("summary lock")
                .add(cell, Ok(CellResult::Skipped(reason)));
            return;
        }
        // At most `jobs` cells run at once, so a device is always free here.
        let (device, origin) = free
            .lock()
            .expect("device pool")
            .pop()
            .expect("a free device");
        let batches = progress.batches();
        cells_bar.set_message(format!("{}", cell.values));
        let splits = &datasets[&dataset_key(cell)];
        let mut result = Err(String::new());
        for attempt in 0..=options.retries {
            if attempt > 0 {
                let hash = &cell.hash[..12];
                tracing::warn!("retry {attempt}/{} of {hash}", options.retries);
            }
            result = run_cell(cell, splits, store, options, &device, &origin, &batches);
            if result.is_ok() || stop::signal().is_some() {
                break;
            }
        }
        progress.remove(&batches);
        free.lock().expect("device pool").push((device, origin));
        cells_bar.inc(1);
        summary.lock().expect("summary lock").add(cell, result);
    };
    if jobs <= 1 {
        // One cell at a time, so the backend's own parallelism has every core.
        on_worker(|| cells.iter().for_each(run));
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build()
            .context("starting the worker threads")?;
        pool.install(|| cells.par_iter().for_each(run));
    }
    progress.remove(&cells_bar);
    let mut summary = summary.into_inner().expect("summary lock");
    summary.signal = stop::signal();
    Ok(summary)
}

/// Runs `f` on a worker of rayon's global pool and waits for it. The backend's parallel
/// operations called from there split their work on the pool itself; called from a thread
/// outside it, each one is handed to the pool and waited for, which cost 5-25 % of a flex
/// training step (ResNet-18 and convnet-small, `train_step_bench`, 2026-12-02).
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut result = None;
    rayon::scope(|scope| scope.spawn(|_| result = Some(f())));
    result.expect("the worker ran f")
}

fn dataset_key(cell: &PlannedCell) -> (String, PathBuf) {
    (canonical_json(&cell.config.dataset), cell.data_root.clone())
}

fn load_datasets(
    cells: &[&PlannedCell],
) -> anyhow::Result<HashMap<(String, PathBuf), Arc<Splits>>> {
    let mut loaded = HashMap::new();
    for cell in cells {
        let key = dataset_key(cell);
        if let std::collections::hash_map::Entry::Vacant(e) = loaded.entry(key) {
            let splits = (cell.config.dataset).load(&cell.data_root, cell.data_table.as_deref())?;
            e.insert(Arc::new(splits));
        }
    }
    Ok(loaded)
}

/// Trains one cell and stores its artifacts; on failure stores the reason and returns it.
/// What became of a cell that did not fail.
enum CellResult {
    Trained,
    Skipped(String),
    /// A signal stopped it after its state was saved: what to tell the user.
    Stopped(String),
}

fn run_cell(
    cell: &PlannedCell,
    splits: &Splits,
    store: &RunStore,
    options: &RunOptions,
    device: &Device,
    origin: &Origin,
    batches: &indicatif::ProgressBar,
) -> Result<CellResult, String> {
    // One writer per run, across processes and machines sharing the store.
    let Some(_lock) = store.try_lock(&cell.hash).map_err(|e| format!("{e:#}"))? else {
        return Ok(CellResult::Skipped(
            "another agml process is training it".into(),
        ));
    };
    // Planned before the lock: another process may have finished it since (a done run whose
    // artifacts do not match its manifest was planned on purpose and is redone).
    if !options.force && super::policy::done_and_intact(store, &cell.hash) {
        return Ok(CellResult::Skipped(
            "finished by another agml process".into(),
        ));
    }
    let started = utc_now();
    let clock = Instant::now();
    let mut writer = store.begin(&cell.hash).map_err(|e| format!("{e:#}"))?;
    let cell_toml = toml::to_string(&cell.config).expect("configurations serialise to TOML");
    writer
        .write(RunFile::Cell, cell_toml.as_bytes())
        .map_err(|e| format!("{e:#}"))?;

    // Training state: a killed or stopped run resumes from it; removed once the run is done.
    let state_dir = writer.dir().join(STATE_DIR);
    let checkpoints = Checkpoints {
        dir: &state_dir,
        every: options.checkpoint_every,
        stop: stop::signal,
    };
    let trained = catch_unwind(AssertUnwindSafe(|| {
        train_run(
            &cell.config,
            cell.weights.as_deref(),
            splits,
            device,
            Some(&checkpoints),
            Some(batches),
        )
    }));
    let outcome = match trained {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(ref error)) if let Some(stopped) = error.downcast_ref::<Stopped>() => {
            return Ok(CellResult::Stopped(stopped_line(stopped, cell)));
        }
        Ok(Err(error)) => return fail(writer, format!("{error:#}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return fail(writer, format!("panicked: {message}"));
        }
    };
    let stored = (|| -> anyhow::Result<()> {
        write_outcome(&mut writer, &outcome, &splits.test, &cell.config)?;
        let provenance = origin.provenance(cell, started, utc_now(), clock.elapsed().as_secs_f64());
        writer.finish(SEMANTICS, provenance)?;
        if let Err(e) = std::fs::remove_dir_all(&state_dir) {
            tracing::warn!("could not remove {}: {e}", state_dir.display());
        }
        Ok(())
    })();
    stored
        .map(|()| CellResult::Trained)
        .map_err(|e| format!("storing the run: {e:#}"))
}

/// What a user reads about a cell a signal stopped.
fn stopped_line(stopped: &Stopped, cell: &PlannedCell) -> String {
    format!(
        "stopped by {} in epoch {} of {} after step {}; its state is saved and the next `agml \
         run` resumes it",
        stop::name(stopped.signal),
        stopped.epoch,
        cell.config.train.epochs,
        stopped.steps_done
    )
}

fn fail(writer: crate::store::RunWriter, reason: String) -> Result<CellResult, String> {
    match writer.fail(&reason) {
        Ok(()) => Err(reason),
        Err(e) => Err(format!("{reason} (and storing the failure failed: {e:#})")),
    }
}
