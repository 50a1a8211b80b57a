//! `agml gc`: run folders no matrix names, and temp files of killed writers. Finished runs are
//! a researcher's most expensive artifact: gc lists each with what it was, its size, its age
//! and the matrix cell it most resembles, refuses a folder without matrices, and removes (or
//! moves, `--to`) them only when confirmed on a terminal or with `--yes`.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agml::error::BadInput;
use agml::matrix::Matrix;
use agml::schedule::gc::{
    Garbage, NamedCell, RunInfo, archive_garbage, delete_garbage, describe, find_garbage,
};
use agml::store::RunStore;
use agml::store::settings::shown;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Folder of the matrices whose cells are kept.
    #[arg(long, default_value = "experiments")]
    experiments: PathBuf,
    /// Remove the runs listed (after confirmation) and the temp files.
    #[arg(long, conflicts_with = "to")]
    delete: bool,
    /// Move the runs listed into this store instead (`DIR/runs/<hash>`), after confirmation.
    #[arg(long, value_name = "ARCHIVE_DIR")]
    to: Option<PathBuf>,
    /// Do not ask: remove or move without confirmation (scripts, batch jobs).
    #[arg(long)]
    yes: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let named = named_cells(&args.experiments)?;
    let hashes: HashSet<String> = named.iter().map(|(hash, _)| hash.clone()).collect();
    let cells: Vec<NamedCell> = named.into_iter().map(|(_, cell)| cell).collect();
    let store = RunStore::new(&args.results);
    let garbage = find_garbage(&store, &hashes)?;
    let runs: Vec<RunInfo> = garbage
        .runs
        .iter()
        .map(|dir| describe(dir, &cells))
        .collect::<anyhow::Result<_>>()?;
    list(&args, &runs, &garbage);
    let action = match (&args.to, args.delete) {
        (Some(archive), _) => Action {
            verb: "move",
            target: format!(" to {}", archive.display()),
        },
        (None, true) => Action {
            verb: "delete",
            target: String::new(),
        },
        (None, false) => {
            if !runs.is_empty() || !garbage.temps.is_empty() {
                println!("(--delete removes them, --to ARCHIVE_DIR moves the runs elsewhere)");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let confirmed = runs.is_empty() || args.yes || confirm(&action, &runs)?;
    let garbage = Garbage {
        runs: if confirmed { garbage.runs } else { Vec::new() },
        ..garbage
    };
    let done = match &args.to {
        Some(archive) => archive_garbage(&store, &garbage, &RunStore::new(archive))?,
        None => delete_garbage(&store, &garbage)?,
    };
    let verb = if args.to.is_some() {
        "moved"
    } else {
        "removed"
    };
    println!(
        "{} of {} runs {verb}, {} temp files removed",
        done.len(),
        runs.len(),
        garbage.temps.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the unnamed runs, the temp files and the runs being written.
fn list(args: &Args, runs: &[RunInfo], garbage: &Garbage) {
    let bytes: u64 = runs.iter().map(|run| run.bytes).sum();
    println!(
        "{} runs that no matrix in {} names ({}):",
        runs.len(),
        args.experiments.display(),
        super::size(bytes)
    );
    for run in runs {
        let hash = run.dir.file_name().unwrap_or_default().to_string_lossy();
        let age = run.age.map_or("?".to_string(), age);
        println!(
            "  {:.12}  {:<10} {:>9}  {:>7} old  {}",
            hash,
            run.state,
            super::size(run.bytes),
            age,
            run.values
        );
        match &run.closest {
            Some(closest) => {
                let changes: Vec<String> = closest
                    .changes
                    .iter()
                    .map(|c| format!("{} {} (now {})", c.key, shown(&c.a), shown(&c.b)))
                    .collect();
                let cell = if closest.values == run.values {
                    "the same cell".to_string()
                } else {
                    closest.values.clone()
                };
                println!(
                    "      {}: {cell} but {}",
                    closest.matrix.display(),
                    changes.join(", ")
                );
            }
            None => println!("      no matrix there has a cell like it"),
        }
    }
    for file in &garbage.temps {
        println!("temp leftover {}", file.display());
    }
    for dir in &garbage.busy {
        println!("kept (being written by another process) {}", dir.display());
    }
}

/// What gc is to do with the runs: `delete`, or `move` with ` to ARCHIVE_DIR`.
struct Action {
    verb: &'static str,
    target: String,
}

/// Asks on the terminal; off a terminal (a script, a batch job) refuses, naming `--yes`.
fn confirm(action: &Action, runs: &[RunInfo]) -> anyhow::Result<bool> {
    let finished = runs.iter().filter(|run| run.state == "done").count();
    let what = format!("{} runs ({finished} finished)", runs.len());
    if !std::io::stdin().is_terminal() {
        return Err(BadInput::new(format!(
            "not asking off a terminal: rerun with --yes to {} the {what}{}; nothing was removed",
            action.verb, action.target
        ))
        .into());
    }
    print!(
        "{} these {what}{}? [y/N] ",
        capitalised(action.verb),
        action.target
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let yes = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes");
    if !yes {
        println!("kept them");
    }
    Ok(yes)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        s if s >= 2 * 86_400 => format!("{} d", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} h", s / 3_600),
        s if s >= 2 * 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// (hash, cell) of every cell of every matrix in `folder`; a folder without matrices is bad
/// input (every run would look like garbage), and one broken matrix stops gc.
fn named_cells(folder: &Path) -> anyhow::Result<Vec<(String, NamedCell)>> {
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
    if paths.is_empty() {
        return Err(BadInput::new(format!(
            "{}: no matrix (*.toml) here; gc keeps the runs of the matrices in --experiments and \
             would call every run garbage",
            folder.display()
        ))
        .into());
    }
    paths.sort();
    let mut named = Vec::new();
    for path in paths {
        for cell in Matrix::load(&path)?.cells {
            let config = toml::Value::try_from(&cell.config)?;
            named.push((
                cell.hash,
                NamedCell {
                    matrix: path.clone(),
                    values: cell.values.to_string(),
                    config,
                },
            ));
        }
    }
    Ok(named)
}
