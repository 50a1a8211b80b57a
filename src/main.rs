//! The `agml` command line: one verb, one call into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agml::error::{BadInput, is_bad_input};
use agml::matrix::{CellFilter, Matrix};
use agml::progress::Progress;
use agml::schedule::slurm::{self, QueueState, SlurmOptions};
use agml::schedule::{RunOptions, missing_inputs, plan, run_cells};
use agml::store::{RunState, RunStore, verify_run, verify_store};
use agml::train::Backend;
use clap::{Parser, Subcommand};

/// Reproducible deep metric learning experiments (attentive grouping).
#[derive(Parser)]
#[command(name = "agml", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `agml check ...`
#[derive(Subcommand)]
enum CheckCommand {
    /// Each head under permutations of feature-map positions and the whole network under
    /// circular input shifts, with a flatten head as the negative control; writes
    /// <out>/tables/invariance.{md,tex}; exit 1 if attentive grouping is not invariant.
    Invariance {
        #[arg(long, default_value = "convnet-small")]
        backbone: String,
        /// Heads to check (default: all); the flatten control is always added.
        #[arg(long, value_delimiter = ',')]
        head: Vec<String>,
        #[arg(long, default_value_t = 4)]
        groups: usize,
        #[arg(long, default_value = "paper")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `--executor slurm` asks of the cluster.
#[derive(clap::Args)]
struct SlurmArgs {
    /// SLURM partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit per cell (sbatch --time, e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    #[arg(long)]
    gpus_per_task: Option<u32>,
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// At most K cells at once.
    #[arg(long)]
    array_parallelism: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// List the cells of a matrix with their state (done, pending, failed, stale).
    Plan {
        matrix: PathBuf,
        /// Select cells: KEY=VAL[,KEY=VAL..] over the axes; repeat to add selections.
        #[arg(long)]
        only: Vec<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// One JSON array of {hash, status, cell}.
        #[arg(long)]
        json: bool,
    },
    /// Train the pending cells of a matrix (finished cells are never redone without --force).
    Run {
        matrix: PathBuf,
        #[arg(long)]
        only: Vec<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// flex (pure Rust CPU) or tch (libtorch; needs the `tch` feature).
        #[arg(long, env = "AGML_BACKEND", default_value = "flex")]
        backend: String,
        /// Cells trained at the same time.
        #[arg(long, default_value_t = 1)]
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
        /// `local` (this machine) or `slurm` (one sbatch job array over the pending cells).
        #[arg(long, default_value = "local")]
        executor: String,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Checks of the method's claims (no training).
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Train one cell of a SLURM submission (what each array task runs).
    RunCell {
        /// The cell's hash (its configuration is in <results>/queue/<hash>.json).
        hash: String,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long, env = "AGML_BACKEND", default_value = "flex")]
        backend: String,
        /// The device to train on (cpu, cuda:0, ...).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
    },
    /// Count the cells of a matrix by state and show failures with their reasons.
    Status {
        matrix: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List (and with --delete remove) run folders that no matrix under --experiments names,
    /// and temp files left by killed writers.
    Gc {
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Folder of the matrices whose cells are kept.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
        #[arg(long)]
        delete: bool,
    },
    /// Re-hash every artifact of every finished run and name each one that does not match
    /// its manifest (exit 1 if any).
    Verify {
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Retrieval and clustering metrics of stored embeddings (.npy): leave-one-out, or the
    /// embeddings as queries against a gallery.
    Evaluate {
        /// float32 [n, d]
        #[arg(long)]
        embeddings: PathBuf,
        /// integers [n]
        #[arg(long)]
        labels: PathBuf,
        /// float32 [m, d]: rank against this gallery instead of leave-one-out
        #[arg(long, requires = "gallery_labels")]
        gallery: Option<PathBuf>,
        #[arg(long, requires = "gallery")]
        gallery_labels: Option<PathBuf>,
        /// The K of Recall@K.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        k: Vec<usize>,
        /// One JSON object of metric -> fraction.
        #[arg(long)]
        json: bool,
    },
    /// Write the comparison tables of a matrix from stored artifacts (never trains).
    Report {
        matrix: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long, default_value = "paper")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let progress = Progress::new();
    progress.init_logging();
    match execute(cli.command, &progress) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(if is_bad_input(&error) { 2 } else { 1 })
        }
    }
}

fn execute(command: Command, progress: &Progress) -> anyhow::Result<ExitCode> {
    match command {
        Command::Plan {
            matrix,
            only,
            results,
            json,
        } => {
            let matrix = Matrix::load(&matrix)?;
            let filter = CellFilter::parse(&only)?;
            let entries = plan(&matrix, &filter, &RunStore::new(&results));
            if json {
                let array: Vec<_> = entries.iter().map(|e| e.to_json()).collect();
                println!("{}", serde_json::to_string_pretty(&array)?);
            } else {
                if let Some(description) = &matrix.description {
                    println!("{}: {}", matrix.name, description.trim());
                }
                for entry in &entries {
                    println!(
                        "{:<8} {}  {}",
                        entry.state.label(),
                        &entry.cell.hash[..12],
                        entry.cell.values
                    );
                }
                println!("{}", counts_line(&matrix, entries.iter().map(|e| &e.state)));
                let cells: Vec<_> = entries.iter().map(|e| e.cell).collect();
                for line in missing_inputs(&cells) {
                    println!("missing: {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            matrix,
            only,
            results,
            backend,
            jobs,
            devices,
            force,
            rerun_stale,
            retries,
            executor,
            slurm,
        } => {
            let backend: Backend = backend.parse()?;
            let on_slurm = match executor.as_str() {
                "local" => false,
                "slurm" => true,
                other => {
                    return Err(BadInput::new(format!(
                        "--executor {other}: unknown executor (known: local, slurm)"
                    ))
                    .into());
                }
            };
            if jobs == 0 {
                return Err(BadInput::new("--jobs must be at least 1").into());
            }
            let matrix = Matrix::load(&matrix)?;
            let filter = CellFilter::parse(&only)?;
            let store = RunStore::new(&results);
            let entries = plan(&matrix, &filter, &store);
            let todo: Vec<_> = entries
                .iter()
                .filter(|e| match &e.state {
                    // A finished run whose artifacts no longer match its manifest is redone.
                    RunState::Done(manifest) => {
                        force || {
                            let mismatches = verify_run(&store, manifest);
                            for m in &mismatches {
                                tracing::warn!("{m}: redoing the run");
                            }
                            !mismatches.is_empty()
                        }
                    }
                    RunState::Stale(_) => force || rerun_stale,
                    RunState::Pending | RunState::Failed(_) => true,
                })
                .map(|e| e.cell)
                .collect();
            if todo.is_empty() {
                println!(
                    "nothing to do: {} selected cells of {} are done ({})",
                    entries.len(),
                    matrix.name,
                    results.display()
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
            if on_slurm {
                return submit_to_slurm(&todo, &store, &matrix, backend, &slurm);
            }
            tracing::info!(
                "{}: training {} of {} selected cells on {backend}",
                matrix.name,
                todo.len(),
                entries.len()
            );
            let summary = run_cells(
                &todo,
                &store,
                &RunOptions {
                    backend,
                    jobs,
                    devices,
                    force,
                    retries,
                },
                progress,
            )?;
            println!(
                "trained {} cells, {} failed; results in {}",
                summary.trained.len(),
                summary.failed.len(),
                results.display()
            );
            Ok(summary_exit(&summary))
        }
        Command::Check {
            what:
                CheckCommand::Invariance {
                    backbone,
                    head,
                    groups,
                    out,
                    json,
                },
        } => {
            let name =
                |kind: &str, text: &str| BadInput::new(format!("--{kind} {text}: unknown name"));
            let backbone = serde_json::from_value(serde_json::Value::String(backbone.clone()))
                .map_err(|_| name("backbone", &backbone))?;
            let heads = if head.is_empty() {
                agml::model::HeadKind::ALL.to_vec()
            } else {
                head.iter()
                    .map(|h| {
                        serde_json::from_value(serde_json::Value::String(h.clone()))
                            .map_err(|_| name("head", h))
                    })
                    .collect::<Result<_, _>>()?
            };
            if groups == 0 || groups > 64 {
                return Err(BadInput::new("--groups must be in 1..=64").into());
            }
            let options = agml::check::invariance::InvarianceOptions {
                backbone,
                heads,
                groups,
                ..Default::default()
            };
            let report =
                agml::check::invariance::check_invariance(&options, &Backend::Flex.device()?);
            let tables = out.join("tables");
            std::fs::create_dir_all(&tables)?;
            agml::store::write_atomic(&tables.join("invariance.md"), report.markdown().as_bytes())?;
            agml::store::write_atomic(&tables.join("invariance.tex"), report.latex().as_bytes())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.markdown());
                println!("wrote {}/invariance.{{md,tex}}", tables.display());
            }
            for failure in &report.failures {
                eprintln!("FAILED: {failure}");
            }
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::RunCell {
            hash,
            results,
            backend,
            devices,
        } => {
            let backend: Backend = backend.parse()?;
            let store = RunStore::new(&results);
            let cell = slurm::queued_cell(&store, &hash)?;
            if let RunState::Done(manifest) = store.state(&hash, agml::train::SEMANTICS)
                && verify_run(&store, &manifest).is_empty()
            {
                println!("{}: done already", &hash[..12]);
                return Ok(ExitCode::SUCCESS);
            }
            let options = RunOptions {
                backend,
                jobs: 1,
                devices,
                force: false,
                retries: 0,
            };
            let summary = run_cells(&[&cell], &store, &options, progress)?;
            Ok(summary_exit(&summary))
        }
        Command::Status {
            matrix,
            results,
            json,
        } => {
            let matrix = Matrix::load(&matrix)?;
            let store = RunStore::new(&results);
            let entries = plan(&matrix, &CellFilter::default(), &store);
            // SLURM's view of the cells the store does not have yet (none without SLURM).
            let queue = slurm::queue_states(&store).unwrap_or_default();
            let on_slurm = |entry: &agml::schedule::PlanEntry| match entry.state {
                RunState::Done(_) => None,
                _ => queue.get(&entry.cell.hash).copied(),
            };
            if json {
                let mut counts = serde_json::Map::new();
                for label in ["done", "pending", "failed", "stale"] {
                    let n = entries.iter().filter(|e| e.state.label() == label).count();
                    counts.insert(label.into(), n.into());
                }
                let cells: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        let mut value = e.to_json();
                        if let Some(state) = on_slurm(e) {
                            value["slurm"] = state.label().into();
                        }
                        value
                    })
                    .collect();
                for state in [QueueState::Queued, QueueState::Running] {
                    let n = entries
                        .iter()
                        .filter(|e| on_slurm(e) == Some(state))
                        .count();
                    counts.insert(state.label().into(), n.into());
                }
                counts.insert("cells".into(), cells.into());
                println!("{}", serde_json::to_string_pretty(&counts)?);
            } else {
                println!("{}", counts_line(&matrix, entries.iter().map(|e| &e.state)));
                let queued = entries
                    .iter()
                    .filter(|e| on_slurm(e) == Some(QueueState::Queued));
                let running = entries
                    .iter()
                    .filter(|e| on_slurm(e) == Some(QueueState::Running));
                let (queued, running) = (queued.count(), running.count());
                if queued + running > 0 {
                    println!("on SLURM: {queued} queued, {running} running");
                }
                for entry in &entries {
                    if let Some(state) = on_slurm(entry) {
                        println!(
                            "{:<8} {}  {}",
                            state.label(),
                            &entry.cell.hash[..12],
                            entry.cell.values
                        );
                    }
                    if let RunState::Failed(failure) = &entry.state {
                        println!(
                            "failed {}  {}: {}",
                            &entry.cell.hash[..12],
                            entry.cell.values,
                            failure.reason
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc {
            results,
            experiments,
            delete,
        } => {
            let named = named_hashes(&experiments)?;
            let store = RunStore::new(&results);
            let garbage = agml::schedule::gc::find_garbage(&store, &named)?;
            for dir in &garbage.runs {
                println!("unnamed run {}", dir.display());
            }
            for file in &garbage.temps {
                println!("temp leftover {}", file.display());
            }
            for dir in &garbage.busy {
                println!("kept (being written by another process) {}", dir.display());
            }
            if delete {
                agml::schedule::gc::delete_garbage(&garbage)?;
            }
            println!(
                "{} unnamed runs, {} temp files{}",
                garbage.runs.len(),
                garbage.temps.len(),
                if delete {
                    ": removed"
                } else {
                    " (run with --delete to remove them)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { results } => {
            let (runs, artifacts, mismatches) = verify_store(&RunStore::new(&results))?;
            for m in &mismatches {
                println!("{m}");
            }
            println!(
                "verified {artifacts} artifacts of {runs} finished runs in {}: {} do not match",
                results.display(),
                mismatches.len()
            );
            Ok(if mismatches.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Evaluate {
            embeddings,
            labels,
            gallery,
            gallery_labels,
            k,
            json,
        } => {
            if k.is_empty() || k.contains(&0) {
                return Err(BadInput::new("--k takes Ks >= 1, e.g. --k 1,2,4,8").into());
            }
            let gallery = gallery.as_deref().zip(gallery_labels.as_deref());
            let metrics = agml::eval::evaluate::evaluate_files(&embeddings, &labels, gallery, &k)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&metrics)?);
            } else {
                for (name, value) in &metrics {
                    println!("{name:<12} {value:.4}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            matrix,
            results,
            out,
        } => {
            let matrix = Matrix::load(&matrix)?;
            report(&matrix, &RunStore::new(&results), &out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(matrix: &Matrix, store: &RunStore, out: &Path) -> anyhow::Result<()> {
    let report = agml::report::write_report(matrix, store, out)?;
    print!("{}", report.main.to_markdown());
    for path in report.written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The hashes of every cell of every matrix in `folder`; one broken matrix stops gc.
fn named_hashes(folder: &Path) -> anyhow::Result<std::collections::HashSet<String>> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        BadInput::new(format!(
            "{}: cannot read the matrices: {e}",
            folder.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut named = std::collections::HashSet::new();
    for path in paths {
        named.extend(Matrix::load(&path)?.cells.into_iter().map(|c| c.hash));
    }
    Ok(named)
}

/// Lists the failed and skipped cells of a run; exit 1 if any failed.
fn summary_exit(summary: &agml::schedule::RunSummary) -> ExitCode {
    for (hash, reason) in &summary.failed {
        println!("failed {}: {reason}", &hash[..12]);
    }
    for (hash, reason) in &summary.skipped {
        println!("skipped {}: {reason}", &hash[..12]);
    }
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `run --executor slurm`: one job array over the cells SLURM does not already hold.
fn submit_to_slurm(
    todo: &[&agml::matrix::PlannedCell],
    store: &RunStore,
    matrix: &Matrix,
    backend: Backend,
    args: &SlurmArgs,
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
    let options = SlurmOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        array_parallelism: args.array_parallelism,
    };
    let submission = slurm::submit(&cells, store, &matrix.name, backend, &options)?;
    println!(
        "submitted job array {} with {} cells of {}; `agml status {}` follows them",
        submission.job_id,
        cells.len(),
        matrix.name,
        matrix.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

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
    if matrix.excluded + matrix.not_applicable > 0 {
        line += &format!(
            " ({} excluded by rules, {} not applicable)",
            matrix.excluded, matrix.not_applicable
        );
    }
    line
}
