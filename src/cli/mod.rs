//! The verbs of the `agml` command line: one file each, each a short call into the library.

mod check;
mod compare;
mod diff;
mod evaluate;
mod gc;
mod plan;
mod report;
mod run;
mod run_cell;
mod show;
mod status;
mod verify;

use std::process::ExitCode;

use agml::matrix::Matrix;
use agml::progress::Progress;
use agml::store::RunState;
use clap::{Parser, Subcommand};

/// Reproducible deep metric learning experiments (attentive grouping).
#[derive(Parser)]
#[command(name = "agml", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the cells of a matrix with their state (done, pending, failed, stale).
    Plan(plan::Args),
    /// Train the pending cells of a matrix (finished cells are never redone without --force).
    Run(run::Args),
    /// Checks of the method's claims (no training).
    Check {
        #[command(subcommand)]
        what: check::CheckCommand,
    },
    /// Train one cell of a SLURM submission (what each array task runs).
    RunCell(run_cell::Args),
    /// Count the cells of a matrix by state and show failures with their reasons.
    Status(status::Args),
    /// List (and with --delete remove) run folders that no matrix under --experiments names,
    /// and temp files left by killed writers.
    Gc(gc::Args),
    /// Re-hash every artifact of every finished run and name each one that does not match
    /// its manifest (exit 1 if any).
    Verify(verify::Args),
    /// Retrieval and clustering metrics of stored embeddings (.npy): leave-one-out, or the
    /// embeddings as queries against a gallery.
    Evaluate(evaluate::Args),
    /// Write the comparison tables of a matrix from stored artifacts (never trains).
    Report(report::Args),
    /// Compare two stores of one matrix: per cell the test metrics, per table whether each
    /// conclusion holds in both (exit 1 naming the first that does not).
    Compare(compare::Args),
    /// One run named by a prefix of its hash: its state, metrics, provenance, settings and
    /// files.
    Show(show::Args),
    /// Two runs side by side: the settings that differ and the metric deltas.
    Diff(diff::Args),
}

/// Runs one verb.
pub fn execute(command: Command, progress: &Progress) -> anyhow::Result<ExitCode> {
    match command {
        Command::Plan(args) => plan::run(args),
        Command::Run(args) => run::run(args, progress),
        Command::Check { what } => check::run(what),
        Command::RunCell(args) => run_cell::run(args, progress),
        Command::Status(args) => status::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Report(args) => report::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Show(args) => show::run(args),
        Command::Diff(args) => diff::run(args),
    }
}

/// A matrix file and the settings `--set` changes in it.
#[derive(clap::Args)]
pub struct MatrixArg {
    matrix: std::path::PathBuf,
    /// Change a setting of the matrix for this command, as if the file said so (the cells and
    /// their hashes change with it): dotted.key=TOML_VALUE, e.g. defaults.epochs=2,
    /// axes.seed=[0,1], datasets.cub.root=/data/CUB_200_2011 (a bare word is a string).
    /// Repeat for more; the last of two on one key wins.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<agml::matrix::Override>,
}

impl MatrixArg {
    fn load(&self) -> anyhow::Result<Matrix> {
        Matrix::load_with(&self.matrix, &self.set)
    }
}

/// A matrix, the cells selected of it, and the store: what `plan` and `run` start from.
#[derive(clap::Args)]
pub struct Selected {
    #[command(flatten)]
    matrix: MatrixArg,
    /// Select cells: KEY=VAL[,KEY=VAL..] over the axes (or hash=PREFIX, 6+ hex digits); repeat
    /// to add selections.
    #[arg(long)]
    only: Vec<String>,
    #[arg(long, default_value = "results")]
    results: std::path::PathBuf,
}

impl Selected {
    /// The loaded matrix, the selection and the store.
    fn load(&self) -> anyhow::Result<(Matrix, agml::matrix::CellFilter, agml::store::RunStore)> {
        let matrix = self.matrix.load()?;
        let filter = agml::matrix::CellFilter::parse(&self.only)?;
        Ok((matrix, filter, agml::store::RunStore::new(&self.results)))
    }
}

/// A count or K of at least 1 (`--jobs`, `--k`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number >= 1")),
    }
}

/// A size in bytes as people read it (`12.3 MiB`).
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Exit 0 when `ok`, else 1 (a run or a check failed).
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `<matrix>: N cells: a done, b pending, ...` with what the rules left out.
fn counts_line<'a>(matrix: &Matrix, states: impl Iterator<Item = &'a RunState>) -> String {
    let states: Vec<&RunState> = states.collect();
    let count = |label: &str| states.iter().filter(|s| s.label() == label).count();
    let mut line = format!(
        "{}: {} cells: {} done, {} pending, {} failed, {} stale",
        matrix.name,
        states.len(),
        count("done"),
        count("pending"),
        count("failed"),
        count("stale")
    );
    // Only when there are any: most stores never see them.
    for label in ["training", "interrupted"] {
        if count(label) > 0 {
            line += &format!(", {} {label}", count(label));
        }
    }
    if matrix.excluded + matrix.not_applicable > 0 {
        line += &format!(
            " ({} excluded by rules, {} not applicable)",
            matrix.excluded, matrix.not_applicable
        );
    }
    line
}

/// Lists the failed, skipped and stopped cells of a run; exit 1 if any failed, 128 + the
/// signal's number (130 for SIGINT, 143 for SIGTERM) if a signal stopped it.
fn summary_exit(summary: &agml::schedule::RunSummary) -> ExitCode {
    for (hash, reason) in &summary.failed {
        println!("failed {}: {reason}", &hash[..12]);
    }
    for (hash, reason) in &summary.skipped {
        println!("skipped {}: {reason}", &hash[..12]);
    }
    for (hash, line) in &summary.stopped {
        println!("stopped {}: {line}", &hash[..12]);
    }
    match summary.signal {
        Some(signal) => ExitCode::from((128 + signal).min(255) as u8),
        None => exit(summary.failed.is_empty()),
    }
}
