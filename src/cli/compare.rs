//! `agml compare STORE_A STORE_B [MATRIX]`: the same matrix in two stores (two machines, two
//! backends, two versions): per cell the test metrics of each, per table whether every
//! conclusion (best in column, the sign of a difference beyond noise, the noise marks) holds
//! in both. Exit 0 when all hold, 1 when one does not, naming it. Without MATRIX: the metrics
//! of every run done in both stores, no tables.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agml::error::BadInput;
use agml::matrix::Matrix;
use agml::report::compare::{CellComparison, compare, compare_stores};
use agml::store::{Manifest, RunStore};

#[derive(clap::Args)]
pub struct Args {
    /// The first store (a results folder).
    store_a: PathBuf,
    /// The second store.
    store_b: PathBuf,
    /// The matrix whose cells and tables are compared (without it: every run done in both
    /// stores, by hash, and no table conclusions).
    matrix: Option<PathBuf>,
    /// Change a setting of MATRIX, as `run --set` did when the stores were made.
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "matrix")]
    set: Vec<agml::matrix::Override>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for store in [&args.store_a, &args.store_b] {
        if !store.join("runs").is_dir() {
            return Err(BadInput::new(format!(
                "{}: not a store (no runs/ folder)",
                store.display()
            ))
            .into());
        }
    }
    let stores = [RunStore::new(&args.store_a), RunStore::new(&args.store_b)];
    let (name, comparison) = match &args.matrix {
        Some(path) => {
            let matrix = Matrix::load_with(path, &args.set)?;
            let comparison = compare(&matrix, &stores[0], &stores[1])?;
            (matrix.name, comparison)
        }
        None => ("runs".to_string(), compare_stores(&stores[0], &stores[1])?),
    };
    let identical = comparison.cells.iter().filter(|c| c.identical()).count();
    println!(
        "{name}: {} cells finished in both stores ({identical} with identical test metrics), {} only in A, {} only in B",
        comparison.cells.len(),
        comparison.only_in[0].len(),
        comparison.only_in[1].len()
    );
    for (name, store, dir) in [
        ("A", &stores[0], &args.store_a),
        ("B", &stores[1], &args.store_b),
    ] {
        let machine = comparison
            .cells
            .first()
            .map_or_else(String::new, |c| machine(store, &c.hash));
        println!("{name}: {}{machine}", dir.display());
    }
    for cell in comparison.cells.iter().filter(|c| !c.identical()) {
        println!("  {}", cell_line(cell));
    }
    if args.matrix.is_none() {
        println!("no matrix given: the tables' conclusions were not checked");
        return Ok(ExitCode::SUCCESS);
    }
    if comparison.flips.is_empty() {
        println!(
            "every conclusion holds in both: {} checked",
            comparison.conclusions
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} of {} conclusions do not hold in both:",
        comparison.flips.len(),
        comparison.conclusions
    );
    for flip in &comparison.flips {
        println!("  {flip}");
    }
    Ok(ExitCode::from(1))
}

/// `hash label: metric a -> b (delta), ...` for the metrics that differ, in percent.
fn cell_line(cell: &CellComparison) -> String {
    let deltas: Vec<String> = cell
        .metrics
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(metric, a, b)| {
            format!(
                "{metric} {:.2} -> {:.2} ({:+.2})",
                a * 100.0,
                b * 100.0,
                (b - a) * 100.0
            )
        })
        .collect();
    let name = [&cell.hash[..12], cell.label.as_str()].join(" ");
    format!("{}: {}", name.trim_end(), deltas.join(", "))
}

/// ` (CPU, SIMD, backend, kernels)` from a run's manifest, or nothing for older runs.
fn machine(store: &RunStore, hash: &str) -> String {
    let path = store.run_dir(hash).join("manifest.json");
    let manifest: Option<Manifest> = std::fs::read_to_string(Path::new(&path))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let Some(provenance) = manifest.map(|m| m.provenance) else {
        return String::new();
    };
    match provenance.machine {
        Some(m) => {
            let kernels: Vec<String> = m.kernels.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!(
                " ({}, {}; {}: {})",
                m.cpu,
                m.cpu_simd,
                provenance.backend,
                kernels.join(", ")
            )
        }
        None => format!(" ({} on {})", provenance.backend, provenance.host),
    }
}
