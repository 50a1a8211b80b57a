//! `agml gc`: run folders no committed matrix names, and temp files of killed writers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agml::error::BadInput;
use agml::matrix::Matrix;
use agml::schedule::gc::{delete_garbage, find_garbage};
use agml::store::RunStore;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Folder of the matrices whose cells are kept.
    #[arg(long, default_value = "experiments")]
    experiments: PathBuf,
    #[arg(long)]
    delete: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let named = named_hashes(&args.experiments)?;
    let garbage = find_garbage(&RunStore::new(&args.results), &named)?;
    for dir in &garbage.runs {
        println!("unnamed run {}", dir.display());
    }
    for file in &garbage.temps {
        println!("temp leftover {}", file.display());
    }
    for dir in &garbage.busy {
        println!("kept (being written by another process) {}", dir.display());
    }
    if args.delete {
        delete_garbage(&garbage)?;
    }
    println!(
        "{} unnamed runs, {} temp files{}",
        garbage.runs.len(),
        garbage.temps.len(),
        if args.delete {
            ": removed"
        } else {
            " (run with --delete to remove them)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The hashes of every cell of every matrix in `folder`; one broken matrix stops gc.
fn named_hashes(folder: &Path) -> anyhow::Result<HashSet<String>> {
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
    let mut named = HashSet::new();
    for path in paths {
        named.extend(Matrix::load(&path)?.cells.into_iter().map(|c| c.hash));
    }
    Ok(named)
}
