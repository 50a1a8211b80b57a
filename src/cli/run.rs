//! `agml run MATRIX`: train the cells the schedule policy picks, here or on SLURM.

use std::process::ExitCode;

use agml::error::BadInput;
use agml::matrix::{Matrix, PlannedCell};
use agml::progress::Progress;
use agml::schedule::slurm::{self, SlurmOptions};
use agml::schedule::{Redo, RunOptions, cells_to_run, missing_inputs, plan, run_cells};
use agml::store::RunStore;
use agml::train::Backend;

/// Where the cells train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// This machine.
    Local,
    /// One sbatch job array over the pending cells.
    Slurm,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    selected: super::Selected,
    /// flex (pure Rust CPU) or tch (libtorch; needs the `tch` feature).
    #[arg(long, value_enum, env = "AGML_BACKEND", default_value_t = Backend::Flex)]
    backend: Backend,
    /// Cells trained at the same time.
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one)]
    jobs: usize,
    /// Devices, each training one cell at a time (cpu, cuda:0, ...; GPUs need tch).
    #[arg(long, value_delimiter = ',', conflicts_with = "jobs")]
    devices: Vec<String>,
    /// Redo selected cells that are already done.
    #[arg(long)]
    force: bool,
    /// Redo selected cells made under another training-semantics version.
    #[arg(long)]
    rerun_stale: bool,
    /// Try a failed cell up to N more times.
    #[arg(long, default_value_t = 0)]
    retries: usize,
    /// Also save the training state within epochs, every N steps or M minutes (`500`, `10m`):
    /// what a stop or a kill loses at most. The state is always saved after each epoch and
    /// when SIGINT, SIGTERM or SIGUSR1 stops the run.
    #[arg(long, value_name = "STEPS|MINUTESm")]
    checkpoint_every: Option<agml::train::CheckpointEvery>,
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    #[command(flatten)]
    slurm: SlurmOptions,
}

pub fn run(args: Args, progress: &Progress) -> anyhow::Result<ExitCode> {
    let (matrix, filter, store) = args.selected.load()?;
    let entries = plan(&matrix, &filter, &store);
    let redo = Redo {
        force: args.force,
        stale: args.rerun_stale,
    };
    let todo = cells_to_run(&entries, &store, redo);
    if todo.is_empty() {
        println!(
            "nothing to do: {} selected cells of {} are done ({})",
            entries.len(),
            matrix.name,
            store.root().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let missing = missing_inputs(&todo);
    if !missing.is_empty() {
        return Err(BadInput::new(format!(
            "{}: inputs are missing, nothing was trained:\n  {}",
            matrix.path.display(),
            missing.join("\n  ")
        ))
        .into());
    }
    if args.executor == Executor::Slurm {
        let slurm = SlurmOptions {
            checkpoint_every: args.checkpoint_every,
            ..args.slurm
        };
        return submit_to_slurm(&todo, &store, &matrix, args.backend, &slurm);
    }
    tracing::info!(
        "{}: training {} of {} selected cells on {}",
        matrix.name,
        todo.len(),
        entries.len(),
        args.backend
    );
    let options = RunOptions {
        backend: args.backend,
        jobs: args.jobs,
        devices: args.devices,
        force: args.force,
        retries: args.retries,
        checkpoint_every: args.checkpoint_every,
    };
    agml::schedule::stop::install()?;
    let summary = run_cells(&todo, &store, &options, progress)?;
    println!(
        "trained {} cells, {} failed; results in {}",
        summary.trained.len(),
        summary.failed.len(),
        store.root().display()
    );
    Ok(super::summary_exit(&summary))
}

/// `run --executor slurm`: one job array over the cells SLURM does not already hold.
fn submit_to_slurm(
    todo: &[&PlannedCell],
    store: &RunStore,
    matrix: &Matrix,
    backend: Backend,
    options: &SlurmOptions,
) -> anyhow::Result<ExitCode> {
    let held = slurm::queue_states(store).unwrap_or_default();
    let cells: Vec<_> = todo
        .iter()
        .copied()
        .filter(|c| !held.contains_key(&c.hash))
        .collect();
    if cells.len() < todo.len() {
        println!(
            "{} cells are already queued or running on SLURM: not submitted again",
            todo.len() - cells.len()
        );
    }
    if cells.is_empty() {
        println!("nothing to submit");
        return Ok(ExitCode::SUCCESS);
    }
    let submission = slurm::submit(&cells, store, &matrix.name, backend, options)?;
    println!(
        "submitted job array {} with {} cells of {}; `agml status {}` follows them",
        submission.job_id,
        cells.len(),
        matrix.name,
        matrix.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
