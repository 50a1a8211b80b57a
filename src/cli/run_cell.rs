//! `agml run-cell HASH`: one SLURM array task trains one queued cell.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::progress::Progress;
use agml::schedule::{RunOptions, done_and_intact, run_cells, slurm};
use agml::store::RunStore;
use agml::train::Backend;

#[derive(clap::Args)]
pub struct Args {
    /// The cell's hash (its configuration is in <results>/queue/<hash>.json).
    hash: String,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(long, value_enum, env = "AGML_BACKEND", default_value_t = Backend::Flex)]
    backend: Backend,
    /// The device to train on (cpu, cuda:0, ...).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Requeues of this SLURM array task after a signal stopped it, before it gives up.
    #[arg(long, default_value_t = slurm::MAX_REQUEUES)]
    max_requeues: u32,
    /// Also save the training state within epochs, every N steps or M minutes (`500`, `10m`):
    /// what a stop or a kill loses at most. The state is always saved after each epoch and
    /// when SIGINT, SIGTERM or SIGUSR1 stops the run.
    #[arg(long, value_name = "STEPS|MINUTESm")]
    checkpoint_every: Option<agml::train::CheckpointEvery>,
}

pub fn run(args: Args, progress: &Progress) -> anyhow::Result<ExitCode> {
    let store = RunStore::new(&args.results);
    let cell = slurm::queued_cell(&store, &args.hash)?;
    if done_and_intact(&store, &args.hash) {
        println!("{}: done already", &args.hash[..12]);
        return Ok(ExitCode::SUCCESS);
    }
    let options = RunOptions {
        backend: args.backend,
        jobs: 1,
        devices: args.devices,
        force: false,
        retries: 0,
        checkpoint_every: args.checkpoint_every,
    };
    agml::schedule::stop::install()?;
    let summary = run_cells(&[&cell], &store, &options, progress)?;
    // Stopped by the time limit's warning or a preemption: the task goes back in the queue and
    // its next start resumes the cell.
    if !summary.stopped.is_empty()
        && let Some(line) = slurm::requeue_this_task(args.max_requeues)
    {
        println!("{line}");
    }
    Ok(super::summary_exit(&summary))
}
