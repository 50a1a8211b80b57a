//! Two stores of one matrix side by side (two machines, two backends, two versions): the
//! test metrics of each cell finished in both, and whether each conclusion of each table
//! holds in both. A conclusion is a mark the report prints: the best value of a column, the
//! sign of a difference to the baseline that is beyond noise in either store, and the noise
//! mark (†) itself. This is what a reviewer runs on a reproduction.

use std::collections::BTreeMap;

use super::aggregate::Aggregate;
use super::index::index_frame;
use super::runs::{Runs, collect_runs, numbers, read_metrics};
use super::table::{Cell, Shape, Table, markdown_cell};
use crate::matrix::Matrix;
use crate::store::RunStore;
use crate::train::SEMANTICS;

/// One cell finished in both stores: its test metrics in each.
#[derive(Debug, Clone)]
pub struct CellComparison {
    pub hash: String,
    /// The cell's axis values, as `agml run` prints them.
    pub label: String,
    /// (metric, store A, store B) for every test metric both have, by name.
    pub metrics: Vec<(String, f64, f64)>,
}

impl CellComparison {
    /// Whether every metric is the same number in both stores.
    pub fn identical(&self) -> bool {
        self.metrics.iter().all(|(_, a, b)| a == b)
    }
}

/// A conclusion of a table that does not hold in both stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    /// The table (its file name, e.g. `fashion-mnist` or `fashion-mnist-losses`).
    pub table: String,
    /// Section label (e.g. `loss margin`; empty for a table of one section).
    pub section: String,
    /// Row keys, e.g. `attentive 4`.
    pub row: String,
    /// Column: the column axis value (if any) and the metric, e.g. `fashion-mnist R@1`.
    pub column: String,
    /// Which mark: `best in column`, `sign of the difference to the baseline`, `noise mark`,
    /// or `missing` (the value is in one store only).
    pub conclusion: &'static str,
    /// The cell as each store's table prints it.
    pub a: String,
    pub b: String,
}

impl std::fmt::Display for Flip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let section = match self.section.is_empty() {
            true => String::new(),
            false => format!(" [{}]", self.section),
        };
        write!(
            f,
            "{}{section}: {} / {}: {} differs: {} vs {}",
            self.table, self.row, self.column, self.conclusion, self.a, self.b
        )
    }
}

/// What `agml compare` found.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub cells: Vec<CellComparison>,
    /// Hashes of cells finished in only one store (A, B).
    pub only_in: [Vec<String>; 2],
    /// Conclusions checked over every table.
    pub conclusions: usize,
    pub flips: Vec<Flip>,
}

/// Compares the runs of `matrix` in stores `a` and `b`.
pub fn compare(matrix: &Matrix, a: &RunStore, b: &RunStore) -> anyhow::Result<Comparison> {
    let runs = [collect_runs(matrix, a)?, collect_runs(matrix, b)?];
    let tests = runs.each_ref().map(|runs| {
        (runs.finished.iter())
            .map(|r| (r.hash.clone(), r.values.to_string(), r.test.clone()))
            .collect()
    });
    let mut comparison = pair(tests);
    let aggregates = [aggregate(&runs[0])?, aggregate(&runs[1])?];
    for shape in Shape::all(&aggregates[0]).into_iter().filter(|s| s.marks) {
        let tables = aggregates
            .each_ref()
            .map(|aggregate| Table::build(&matrix.name, &shape, aggregate));
        compare_marks(&shape.file_name(&matrix.name), &tables, &mut comparison);
    }
    Ok(comparison)
}

/// Without a matrix: the test metrics of every run done in both stores, by hash (no tables,
/// so no conclusions to check).
pub fn compare_stores(a: &RunStore, b: &RunStore) -> anyhow::Result<Comparison> {
    let mut tests = [Vec::new(), Vec::new()];
    for (store, tests) in [a, b].into_iter().zip(&mut tests) {
        for hash in store.done_runs(SEMANTICS) {
            let test = numbers(&read_metrics(store, &hash)?["test"]);
            tests.push((hash, String::new(), test));
        }
    }
    Ok(pair(tests))
}

/// One store's runs, in order: hash, label and test metrics.
type Tests = Vec<(String, String, Vec<(String, f64)>)>;

/// The runs of two stores paired by hash: the metrics both have, and the runs of one only,
/// in the first store's order.
fn pair([a, b]: [Tests; 2]) -> Comparison {
    let by_hash = |tests: &Tests| -> BTreeMap<String, usize> {
        (tests.iter().enumerate())
            .map(|(i, (hash, _, _))| (hash.clone(), i))
            .collect()
    };
    let (in_a, in_b) = (by_hash(&a), by_hash(&b));
    let only = |of: &Tests, other: &BTreeMap<String, usize>| {
        (of.iter())
            .filter(|(hash, _, _)| !other.contains_key(hash))
            .map(|(hash, _, _)| hash.clone())
            .collect()
    };
    let cells = (a.iter())
        .filter_map(|(hash, label, test)| {
            let theirs: BTreeMap<&str, f64> = (b[*in_b.get(hash)?].2.iter())
                .map(|(k, v)| (k.as_str(), *v))
                .collect();
            let metrics = (test.iter())
                .filter_map(|(k, v)| theirs.get(k.as_str()).map(|w| (k.clone(), *v, *w)))
                .collect();
            Some(CellComparison {
                hash: hash.clone(),
                label: label.clone(),
                metrics,
            })
        })
        .collect();
    Comparison {
        cells,
        only_in: [only(&a, &in_b), only(&b, &in_a)],
        ..Comparison::default()
    }
}

fn aggregate(runs: &Runs) -> anyhow::Result<Aggregate> {
    Ok(Aggregate::new(&index_frame(&runs.finished)?, runs)?)
}

/// The conclusions one table cell states: best of its column, and the difference to the
/// baseline as (whether it is positive, whether it is within noise).
fn conclusions(cell: &Cell) -> Option<(bool, Option<(bool, bool)>)> {
    cell.stat
        .map(|_| (cell.best, cell.delta.map(|(d, noise)| (d > 0.0, noise))))
}

fn compare_marks(name: &str, [a, b]: &[Table; 2], comparison: &mut Comparison) {
    for (section_a, section_b) in a.sections.iter().zip(&b.sections) {
        for (row_a, row_b) in section_a.rows.iter().zip(&section_b.rows) {
            for (c, (cell_a, cell_b)) in row_a.cells.iter().zip(&row_b.cells).enumerate() {
                let flip = |conclusion| Flip {
                    table: name.to_string(),
                    section: section_a.label.clone(),
                    row: row_a.keys.join(" "),
                    column: a.column_label(c),
                    conclusion,
                    a: markdown_cell(cell_a),
                    b: markdown_cell(cell_b),
                };
                let (ca, cb) = (conclusions(cell_a), conclusions(cell_b));
                let (Some((best_a, delta_a)), Some((best_b, delta_b))) = (ca, cb) else {
                    if ca.is_some() != cb.is_some() {
                        comparison.flips.push(flip("missing"));
                    }
                    continue;
                };
                comparison.conclusions += 1;
                if best_a != best_b {
                    comparison.flips.push(flip("best in column"));
                }
                if let (Some((up_a, noise_a)), Some((up_b, noise_b))) = (delta_a, delta_b) {
                    comparison.conclusions += 2;
                    if up_a != up_b && !(noise_a && noise_b) {
                        comparison
                            .flips
                            .push(flip("sign of the difference to the baseline"));
                    }
                    if noise_a != noise_b {
                        comparison.flips.push(flip("noise mark"));
                    }
                }
            }
        }
    }
}
