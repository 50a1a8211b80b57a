//! Reports: tables and figures computed from stored artifacts only (never a forward pass,
//! never training).

pub mod aggregate;
pub mod compare;
pub mod figures;
pub mod index;
pub mod run_detail;
pub mod runs;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use runs::{RunRow, Runs, collect_runs};
pub use table::{Shape, Table, write_table};

use crate::matrix::Matrix;
use crate::store::RunStore;

/// What `agml report` wrote.
pub struct Report {
    /// The main table (method x dataset), as printed.
    pub main: Table,
    pub written: Vec<PathBuf>,
}

/// Writes the runs index (`<out>/tables/<matrix>-runs.parquet`), every table shape the matrix
/// has data for (`<out>/tables/<matrix>[-shape].{md,tex,csv}`) and the figures
/// (`<out>/figures/*.{png,svg}`).
pub fn write_report(matrix: &Matrix, store: &RunStore, out: &Path) -> anyhow::Result<Report> {
    let runs = collect_runs(matrix, store)?;
    let (aggregate, mut report) = write_tables(matrix, &runs, out)?;
    report.written.extend(figures::write_figures(
        &matrix.name,
        &runs,
        &aggregate,
        &report.main,
        out,
    )?);
    Ok(report)
}

/// The tables of [`write_report`] without its figures: they need only each run's metrics.json
/// (what the committed reference store keeps); also returns the aggregate they were built from.
pub fn write_tables(
    matrix: &Matrix,
    runs: &Runs,
    out: &Path,
) -> anyhow::Result<(aggregate::Aggregate, Report)> {
    let name = &matrix.name;
    let tables = out.join("tables");
    std::fs::create_dir_all(&tables).with_context(|| format!("creating {}", tables.display()))?;
    let index = index::index_frame(&runs.finished)?;
    let index_path = tables.join(format!("{name}-runs.parquet"));
    index::write_index(&index, &index_path)?;
    let mut written = vec![index_path];
    let aggregate = aggregate::Aggregate::new(&index, runs)?;
    let mut main = None;
    for shape in Shape::all(&aggregate) {
        let table = Table::build(name, &shape, &aggregate);
        written.extend(write_table(&table, out, &shape.file_name(name))?);
        main.get_or_insert(table);
    }
    let main = main.expect("the main shape is always built");
    Ok((aggregate, Report { main, written }))
}
