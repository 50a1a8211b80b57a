//! The paper's tables, aggregated from the runs index: a shape names the row keys, an
//! optional column axis and the metrics; every other key that varies splits the table into
//! sections. Written as Markdown, LaTeX (booktabs) and CSV.
//!
//! shape.rs chooses the tables a matrix gets, build.rs aggregates one, marks.rs marks the best
//! value and the differences to the baseline, render.rs writes the three formats.

mod build;
mod marks;
mod render;
mod shape;

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::aggregate::{Keys, Stat};
use super::runs::KEY_COLUMNS;
use crate::matrix::Axis;
use crate::store::write_atomic;

pub use render::{display_metric, markdown_cell};
pub use shape::metric_order;

/// What a table compares.
#[derive(Debug, Clone)]
pub struct Shape {
    /// File name suffix after the matrix name ("" for the main table).
    pub suffix: &'static str,
    /// What the caption says the table shows (after the matrix name).
    pub what: String,
    /// Keys that name a row, e.g. head and groups.
    pub rows: Vec<Axis>,
    /// A key whose values become column groups (dataset, loss, backbone).
    pub column: Option<Axis>,
    /// (split, metric) pairs shown per column group; metrics no run has are dropped.
    pub metrics: Vec<(&'static str, String)>,
    /// Only these heads (empty: every head).
    pub heads: Vec<String>,
    /// Mark the best of each column and the difference to the baseline row.
    pub marks: bool,
    pub baseline: Baseline,
}

impl Shape {
    /// The name of this shape's table files for the matrix `matrix`: the matrix's name, and
    /// the shape's suffix after a dash.
    pub fn file_name(&self, matrix: &str) -> String {
        match self.suffix {
            "" => matrix.to_string(),
            suffix => format!("{matrix}-{suffix}"),
        }
    }
}

/// The row each difference is taken against, within a section and column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// head none with P = 1.
    NoGrouping,
    /// The row with the fewest groups.
    FewestGroups,
}

/// One table value: the aggregate over the replicates that finished, out of those planned.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub stat: Option<Stat>,
    pub planned: u32,
    pub best: bool,
    /// Difference to the baseline and whether it is within noise.
    pub delta: Option<(f64, bool)>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub keys: Vec<String>,
    /// One per (column value, metric).
    pub cells: Vec<Cell>,
}

/// Rows sharing the values of the keys that are neither row keys nor the column axis.
#[derive(Debug, Clone)]
pub struct Section {
    /// e.g. "loss margin" (empty when the table has one section).
    pub label: String,
    /// Values of the key columns that are neither row keys nor the column axis, in
    /// [`KEY_COLUMNS`] order.
    pub section_keys: Vec<String>,
    /// The values named in `label` (the section keys that vary between sections).
    pub varying: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub caption: String,
    pub row_keys: Vec<Axis>,
    pub column: Option<Axis>,
    /// Column values (a single empty string without a column axis).
    pub column_values: Vec<String>,
    pub metrics: Vec<(&'static str, String)>,
    pub sections: Vec<Section>,
    /// Key combinations x replicates shown, and how many of them finished.
    pub planned: u32,
    pub finished: u32,
}

/// The position of `key` in [`KEY_COLUMNS`] (and so in every [`Keys`]).
pub(crate) fn key_index(key: Axis) -> usize {
    KEY_COLUMNS
        .iter()
        .position(|k| *k == key)
        .expect("a key column")
}

/// Full keys in [`KEY_COLUMNS`] order from a table's parts: a key in `row_keys` takes the row's
/// value, the `column` axis the column value, every other key the next section value.
pub(super) fn assemble_keys(
    row_keys: &[Axis],
    column: Option<Axis>,
    section: &[String],
    row: &[String],
    column_value: &str,
) -> Keys {
    let mut section_values = section.iter();
    KEY_COLUMNS
        .iter()
        .map(|k| match row_keys.iter().position(|r| r == k) {
            Some(i) => row[i].clone(),
            None if Some(*k) == column => column_value.to_string(),
            None => section_values.next().cloned().unwrap_or_default(),
        })
        .collect()
}

impl Table {
    /// The full keys of one cell group: a row of `section` under `column_value`.
    pub fn full_keys(&self, section: &Section, row: &[String], column_value: &str) -> Keys {
        assemble_keys(
            &self.row_keys,
            self.column,
            &section.section_keys,
            row,
            column_value,
        )
    }

    pub fn status_line(&self) -> String {
        if self.finished == self.planned {
            format!("All {} runs finished.", self.planned)
        } else {
            format!(
                "{} of {} runs finished; {} missing.",
                self.finished,
                self.planned,
                self.planned - self.finished
            )
        }
    }
}

/// Writes `<out>/tables/<name>.{md,tex,csv}`; returns the paths.
pub fn write_table(table: &Table, out: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.join("tables");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (ext, text) in [
        ("md", table.to_markdown()),
        ("tex", table.to_latex()),
        ("csv", table.to_csv()?),
    ] {
        let path = dir.join(format!("{name}.{ext}"));
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
