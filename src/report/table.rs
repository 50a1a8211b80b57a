//! The paper's tables, aggregated from the runs index: a shape names the row keys, an
//! optional column axis and the metrics; every other key that varies splits the table into
//! sections. Written as Markdown, LaTeX (booktabs) and CSV.

use std::path::{Path, PathBuf};

use anyhow::Context;
use polars::prelude::*;

use super::aggregate::{Aggregate, Keys, Stat};
use super::runs::KEY_COLUMNS;
use crate::store::write_atomic;

/// What a table compares.
#[derive(Debug, Clone)]
pub struct Shape {
    /// File name suffix after the matrix name ("" for the main table).
    pub suffix: &'static str,
    /// What the caption says the table shows (after the matrix name).
    pub what: String,
    /// Keys that name a row, e.g. head and groups.
    pub rows: Vec<&'static str>,
    /// A key whose values become column groups (dataset, loss, backbone).
    pub column: Option<&'static str>,
    /// (split, metric) pairs shown per column group; metrics no run has are dropped.
    pub metrics: Vec<(&'static str, String)>,
    /// Only these heads (empty: every head).
    pub heads: Vec<String>,
    /// Mark the best of each column and the difference to the baseline row.
    pub marks: bool,
    pub baseline: Baseline,
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
    pub row_keys: Vec<&'static str>,
    pub column: Option<&'static str>,
    /// Column values (a single empty string without a column axis).
    pub column_values: Vec<String>,
    pub metrics: Vec<(&'static str, String)>,
    pub sections: Vec<Section>,
    /// Key combinations x replicates shown, and how many of them finished.
    pub planned: u32,
    pub finished: u32,
}

/// A difference is within noise when it is below two standard errors of the difference
/// (normal approximation, sample std over seeds), or when either side has a single seed.
fn within_noise(a: Stat, b: Stat) -> bool {
    if a.seeds < 2 || b.seeds < 2 || a.std.is_nan() || b.std.is_nan() {
        return true;
    }
    let se = (a.std * a.std / f64::from(a.seeds) + b.std * b.std / f64::from(b.seeds)).sqrt();
    (a.mean - b.mean).abs() < 2.0 * se
}

/// Metric display order: Recall@K by K, then MAP@R, R-Precision, NMI, F1, the
/// interpretability numbers, then any other by name.
pub fn metric_order(names: &[String]) -> Vec<String> {
    let mut recall: Vec<(usize, String)> = names
        .iter()
        .filter_map(|n| {
            n.strip_prefix("recall@")
                .and_then(|k| k.parse().ok())
                .map(|k| (k, n.clone()))
        })
        .collect();
    recall.sort();
    let mut ordered: Vec<String> = recall.into_iter().map(|(_, n)| n).collect();
    const KNOWN: [&str; 7] = [
        "map@r",
        "r_precision",
        "nmi",
        "f1",
        "group_cosine",
        "attention_overlap",
        "attention_entropy",
    ];
    ordered.extend(
        KNOWN
            .iter()
            .filter(|k| names.iter().any(|n| n == *k))
            .map(|k| k.to_string()),
    );
    let mut rest: Vec<String> = names
        .iter()
        .filter(|n| !n.starts_with("recall@") && !KNOWN.contains(&n.as_str()))
        .cloned()
        .collect();
    rest.sort();
    ordered.extend(rest);
    ordered
}

const NOISE: &str = "†: within noise (the difference is below two standard errors of the \
                     difference, sample std over seeds, or a side has a single seed)";

impl Shape {
    fn test_metrics(aggregate: &Aggregate, only: &[&str]) -> Vec<(&'static str, String)> {
        metric_order(&aggregate.metrics("test"))
            .into_iter()
            .filter(|m| only.is_empty() || only.contains(&m.as_str()))
            .map(|m| ("test", m))
            .collect()
    }

    /// Every shape this matrix has data for: the main table (method x dataset), loss and
    /// backbone generality when those axes vary, the group-count ablation of each head run at
    /// several P, and the interpretability table.
    pub fn all(aggregate: &Aggregate) -> Vec<Shape> {
        let method = vec!["head", "groups"];
        let mut shapes = vec![Shape {
            suffix: "",
            what: "test metrics (%) of the epoch selected on validation, per method and dataset"
                .into(),
            rows: method.clone(),
            column: Some("dataset"),
            metrics: Self::test_metrics(aggregate, &[]),
            heads: vec![],
            marks: true,
            baseline: Baseline::NoGrouping,
        }];
        for (suffix, axis) in [("losses", "loss"), ("backbones", "backbone")] {
            if aggregate.values(axis).len() > 1 {
                shapes.push(Shape {
                    suffix,
                    what: format!(
                        "{axis} generality: Recall@1 and MAP@R (%) of every method under each {axis}"
                    ),
                    rows: method.clone(),
                    column: Some(axis),
                    metrics: Self::test_metrics(aggregate, &["recall@1", "map@r"]),
                    heads: vec![],
                    marks: true,
                    baseline: Baseline::NoGrouping,
                });
            }
        }
        let planned = aggregate.planned_keys();
        let (head_at, groups_at) = (key_index("head"), key_index("groups"));
        let swept: Vec<String> = aggregate
            .values("head")
            .into_iter()
            .filter(|head| {
                let mut groups: Vec<&String> = planned
                    .iter()
                    .filter(|k| &k[head_at] == head)
                    .map(|k| &k[groups_at])
                    .collect();
                groups.dedup();
                groups.len() > 1
            })
            .collect();
        if !swept.is_empty() {
            shapes.push(Shape {
                suffix: "groups",
                what: format!(
                    "group count ablation ({}): test metrics (%) per number of groups P",
                    swept.join(", ")
                ),
                rows: vec!["head", "groups"],
                column: None,
                metrics: Self::test_metrics(aggregate, &[]),
                heads: swept,
                marks: true,
                baseline: Baseline::FewestGroups,
            });
        }
        let interpretability = aggregate.metrics("interpretability");
        if !interpretability.is_empty() {
            let mut metrics = Self::test_metrics(aggregate, &["recall@1", "map@r"]);
            metrics.extend(
                metric_order(&interpretability)
                    .into_iter()
                    .map(|m| ("interpretability", m)),
            );
            shapes.push(Shape {
                suffix: "interpretability",
                what: "interpretability of the selected epoch on the test set, next to its \
                       accuracy (all in %). cos: mean pairwise cosine of an image's group \
                       embeddings; overlap: mean pairwise Bhattacharyya coefficient of its \
                       groups' attention maps (100 identical, 0 disjoint); entropy: attention \
                       entropy over positions / log N (100 uniform). Lower cos and overlap mean \
                       more distinct groups, which is not better by itself: no marks"
                    .into(),
                rows: method,
                column: None,
                metrics,
                heads: aggregate
                    .values("head")
                    .into_iter()
                    .filter(|h| h != "none")
                    .collect(),
                marks: false,
                baseline: Baseline::NoGrouping,
            });
        }
        shapes
    }
}

/// The position of `key` in [`KEY_COLUMNS`] (and so in every [`Keys`]).
pub(crate) fn key_index(key: &str) -> usize {
    KEY_COLUMNS
        .iter()
        .position(|k| *k == key)
        .expect("a key column")
}

/// Full keys in [`KEY_COLUMNS`] order from a table's parts: a key in `row_keys` takes the row's
/// value, the `column` axis the column value, every other key the next section value.
fn assemble_keys(
    row_keys: &[&str],
    column: Option<&str>,
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

    pub fn build(name: &str, shape: &Shape, aggregate: &Aggregate) -> Table {
        let keep = |k: &Keys| shape.heads.is_empty() || shape.heads.contains(&k[key_index("head")]);
        let planned: Vec<Keys> = aggregate.planned_keys().into_iter().filter(keep).collect();
        let row_index: Vec<usize> = shape.rows.iter().map(|k| key_index(k)).collect();
        let column_index = shape.column.map(key_index);
        let section_index: Vec<usize> = (0..KEY_COLUMNS.len())
            .filter(|i| !row_index.contains(i) && Some(*i) != column_index)
            .collect();
        let project = |k: &Keys, idx: &[usize]| -> Vec<String> {
            idx.iter().map(|&i| k[i].clone()).collect()
        };
        let distinct = |idx: &[usize]| -> Vec<Vec<String>> {
            let mut out: Vec<Vec<String>> = Vec::new();
            for k in &planned {
                let p = project(k, idx);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            out
        };
        let column_values: Vec<String> = match column_index {
            Some(i) => distinct(&[i])
                .into_iter()
                .map(|mut v| v.remove(0))
                .collect(),
            None => vec![String::new()],
        };
        // Section keys that never vary go to the caption; the rest label the sections.
        let sections_values = distinct(&section_index);
        let varying: Vec<bool> = (0..section_index.len())
            .map(|j| {
                sections_values
                    .iter()
                    .any(|s| s[j] != sections_values[0][j])
            })
            .collect();
        let mut constant = Vec::new();
        if let (Some(i), [only]) = (column_index, column_values.as_slice()) {
            constant.push(format!("{} {only}", KEY_COLUMNS[i]));
        }
        if let Some(first) = sections_values.first() {
            constant.extend(
                section_index
                    .iter()
                    .zip(first)
                    .zip(&varying)
                    .filter(|(_, v)| !**v)
                    .map(|((&i, value), _)| format!("{} {value}", KEY_COLUMNS[i])),
            );
        }
        let metrics: Vec<(&'static str, String)> = shape.metrics.clone();
        let (mut total_planned, mut total_finished) = (0, 0);
        let mut sections = Vec::new();
        for section in &sections_values {
            let in_section: Vec<&Keys> = planned
                .iter()
                .filter(|k| &project(k, &section_index) == section)
                .collect();
            let mut row_values: Vec<Vec<String>> = Vec::new();
            for k in &in_section {
                let r = project(k, &row_index);
                if !row_values.contains(&r) {
                    row_values.push(r);
                }
            }
            let full_keys = |row: &[String], column: &str| -> Keys {
                assemble_keys(&shape.rows, shape.column, section, row, column)
            };
            let mut rows: Vec<Row> = row_values
                .iter()
                .map(|row| {
                    let mut cells = Vec::new();
                    for column in &column_values {
                        let keys = full_keys(row, column);
                        let planned = aggregate.planned(&keys);
                        for (split, metric) in &metrics {
                            cells.push(Cell {
                                stat: aggregate.stat(&keys, split, metric),
                                planned,
                                best: false,
                                delta: None,
                            });
                        }
                    }
                    Row {
                        keys: row.clone(),
                        cells,
                    }
                })
                .collect();
            for row in &row_values {
                for column in &column_values {
                    let keys = full_keys(row, column);
                    total_planned += aggregate.planned(&keys);
                    total_finished += metrics
                        .iter()
                        .filter_map(|(s, m)| aggregate.stat(&keys, s, m))
                        .map(|s| s.seeds)
                        .max()
                        .unwrap_or(0);
                }
            }
            if shape.marks {
                mark(&mut rows, &shape.rows, shape.baseline);
            }
            let (names, values): (Vec<String>, Vec<String>) = section_index
                .iter()
                .zip(section)
                .zip(&varying)
                .filter(|(_, v)| **v)
                .map(|((&i, v), _)| (format!("{} {v}", KEY_COLUMNS[i]), v.clone()))
                .unzip();
            sections.push(Section {
                label: names.join(", "),
                section_keys: section.clone(),
                varying: values,
                rows,
            });
        }
        let scope = if constant.is_empty() {
            String::new()
        } else {
            format!(" ({})", constant.join(", "))
        };
        let mut caption = format!("{name}{scope}: {}; mean ± std over seeds", shape.what);
        if shape.marks {
            let baseline = match shape.baseline {
                Baseline::NoGrouping => "no grouping (none, P = 1)",
                Baseline::FewestGroups => "the fewest groups of the same head",
            };
            caption += &format!(
                ". Bold: best of its column in its section; (+x): difference in points to \
                 {baseline} in the same column; {NOISE}"
            );
        }
        caption += "; ‡: not all seeds finished";
        Table {
            caption,
            row_keys: shape.rows.clone(),
            column: shape.column,
            column_values,
            metrics,
            sections,
            planned: total_planned,
            finished: total_finished,
        }
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

    fn header_cells(&self) -> Vec<String> {
        let mut header: Vec<String> = self.row_keys.iter().map(|k| k.to_string()).collect();
        header.push("seeds".into());
        for column in &self.column_values {
            for (_, metric) in &self.metrics {
                header.push(if self.column_values.len() > 1 {
                    format!("{column} {}", display_metric(metric))
                } else {
                    display_metric(metric)
                });
            }
        }
        header
    }

    /// Markdown: one table per section, values in percent.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("{}\n", self.caption);
        let header = self.header_cells();
        for section in &self.sections {
            out += "\n";
            if !section.label.is_empty() {
                out += &format!("**{}**\n\n", section.label);
            }
            out += &format!("| {} |\n", header.join(" | "));
            out += &format!("|{}\n", header.iter().map(|_| "---|").collect::<String>());
            for row in &section.rows {
                let mut cells = row.keys.clone();
                cells.push(seeds(row));
                for cell in &row.cells {
                    cells.push(render(cell, Format::Markdown));
                }
                out += &format!("| {} |\n", cells.join(" | "));
            }
        }
        out += &format!("\n{}\n", self.status_line());
        out
    }

    /// A LaTeX `table` with booktabs rules, ready to `\input`.
    pub fn to_latex(&self) -> String {
        let keys = self.row_keys.len() + 1;
        let per_column = self.metrics.len();
        let width = keys + per_column * self.column_values.len();
        let mut out = String::from("\\begin{table}[t]\n\\centering\n\\small\n");
        out += &format!(
            "\\caption{{{}. {}}}\n",
            latex_escape(&self.caption),
            latex_escape(&self.status_line())
        );
        out += &format!(
            "\\resizebox{{\\linewidth}}{{!}}{{%\n\\begin{{tabular}}{{{}{}}}\n\\toprule\n",
            "l".repeat(keys),
            "r".repeat(width - keys)
        );
        if self.column_values.len() > 1 {
            let mut groups = vec![String::new(); keys];
            let mut rules = String::new();
            for (j, column) in self.column_values.iter().enumerate() {
                groups.push(format!(
                    "\\multicolumn{{{per_column}}}{{c}}{{{}}}",
                    latex_escape(column)
                ));
                let start = keys + j * per_column + 1;
                rules += &format!("\\cmidrule(lr){{{start}-{}}}", start + per_column - 1);
            }
            out += &format!("{} \\\\\n{rules}\n", groups.join(" & "));
        }
        let mut header: Vec<String> = self.row_keys.iter().map(|k| latex_escape(k)).collect();
        header.push("seeds".into());
        for _ in &self.column_values {
            header.extend(
                self.metrics
                    .iter()
                    .map(|(_, m)| latex_escape(&display_metric(m))),
            );
        }
        out += &format!("{} \\\\\n", header.join(" & "));
        for section in &self.sections {
            out += "\\midrule\n";
            if !section.label.is_empty() {
                out += &format!(
                    "\\multicolumn{{{width}}}{{l}}{{\\textit{{{}}}}} \\\\\n",
                    latex_escape(&section.label)
                );
            }
            for row in &section.rows {
                let mut cells: Vec<String> = row.keys.iter().map(|k| latex_escape(k)).collect();
                cells.push(latex_escape(&seeds(row)));
                for cell in &row.cells {
                    cells.push(render(cell, Format::Latex));
                }
                out += &format!("{} \\\\\n", cells.join(" & "));
            }
        }
        out += "\\bottomrule\n\\end{tabular}}\n\\end{table}\n";
        out
    }

    /// Tidy CSV: one line per key combination x metric shown (fractions, full precision),
    /// keys in the index's column order.
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut keys: Vec<Vec<String>> = vec![Vec::new(); KEY_COLUMNS.len()];
        let (mut split, mut metric) = (Vec::new(), Vec::new());
        let (mut mean, mut std, mut seeds, mut planned, mut best, mut delta, mut noise) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for section in &self.sections {
            for row in &section.rows {
                let mut cells = row.cells.iter();
                for column in &self.column_values {
                    let full = self.full_keys(section, &row.keys, column);
                    for (s, m) in &self.metrics {
                        let cell = cells.next().expect("a cell per column and metric");
                        for (out, v) in keys.iter_mut().zip(&full) {
                            out.push(v.clone());
                        }
                        split.push(s.to_string());
                        metric.push(m.clone());
                        mean.push(cell.stat.map(|s| s.mean));
                        std.push(cell.stat.map(|s| s.std).filter(|s| !s.is_nan()));
                        seeds.push(cell.stat.map_or(0, |s| s.seeds));
                        planned.push(cell.planned);
                        best.push(cell.best);
                        delta.push(cell.delta.map(|d| d.0));
                        noise.push(cell.delta.map(|d| d.1));
                    }
                }
            }
        }
        let height = mean.len();
        let mut columns: Vec<Column> = KEY_COLUMNS
            .iter()
            .zip(keys)
            .map(|(k, v)| Column::new((*k).into(), v))
            .collect();
        columns.extend([
            Column::new("split".into(), split),
            Column::new("metric".into(), metric),
            Column::new("mean".into(), mean),
            Column::new("std".into(), std),
            Column::new("seeds".into(), seeds),
            Column::new("planned".into(), planned),
            Column::new("best".into(), best),
            Column::new("delta".into(), delta),
            Column::new("within_noise".into(), noise),
        ]);
        let mut frame = DataFrame::new(height, columns)?;
        let mut buffer = Vec::new();
        CsvWriter::new(&mut buffer).finish(&mut frame)?;
        Ok(String::from_utf8(buffer)?)
    }
}

/// Best of each column and differences to the baseline row, within one section.
fn mark(rows: &mut [Row], row_keys: &[&str], baseline: Baseline) {
    let position = |key: &str| row_keys.iter().position(|k| *k == key);
    let (head, groups) = (position("head"), position("groups"));
    let groups_of = |row: &Row| groups.and_then(|g| row.keys[g].parse::<usize>().ok());
    let base: Vec<Option<usize>> = rows
        .iter()
        .map(|row| match baseline {
            Baseline::NoGrouping => rows.iter().position(|r| {
                head.is_some_and(|h| r.keys[h] == "none") && groups_of(r).is_none_or(|g| g == 1)
            }),
            Baseline::FewestGroups => {
                let same_head = |r: &Row| head.is_none_or(|h| r.keys[h] == row.keys[h]);
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| same_head(r))
                    .min_by_key(|(_, r)| groups_of(r))
                    .map(|(i, _)| i)
            }
        })
        .collect();
    let columns = rows.first().map_or(0, |r| r.cells.len());
    for c in 0..columns {
        let means: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.cells[c].stat.map(|s| s.mean))
            .collect();
        let top = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let snapshot: Vec<Option<Stat>> = rows.iter().map(|r| r.cells[c].stat).collect();
        for (i, row) in rows.iter_mut().enumerate() {
            let cell = &mut row.cells[c];
            let Some(stat) = cell.stat else { continue };
            cell.best = means.len() > 1 && stat.mean == top;
            cell.delta = match base[i] {
                Some(b) if b != i => {
                    snapshot[b].map(|b| (stat.mean - b.mean, within_noise(stat, b)))
                }
                _ => None,
            };
        }
    }
}

/// The row's finished replicates, "k/n" when some did not finish.
fn seeds(row: &Row) -> String {
    let planned: u32 = row.cells.iter().map(|c| c.planned).max().unwrap_or(0);
    let finished: u32 = row
        .cells
        .iter()
        .filter_map(|c| c.stat.map(|s| s.seeds))
        .max()
        .unwrap_or(0);
    if finished == planned {
        finished.to_string()
    } else {
        format!("{finished}/{planned}")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Markdown,
    Latex,
}

fn render(cell: &Cell, format: Format) -> String {
    let latex = format == Format::Latex;
    let Some(stat) = cell.stat else {
        return match (cell.planned, latex) {
            (0, _) => String::new(),
            (_, false) => "missing".into(),
            (_, true) => "--".into(),
        };
    };
    let value = percent(stat.mean, stat.std, if latex { "\\pm" } else { "±" });
    let incomplete = stat.seeds < cell.planned;
    let mut out = match (cell.best, latex) {
        (true, false) => format!("**{value}**"),
        (true, true) => format!("$\\mathbf{{{value}}}$"),
        (false, false) => value,
        (false, true) => format!("${value}$"),
    };
    if let Some((delta, noise)) = cell.delta {
        out += &if latex {
            format!(
                " {{\\scriptsize ${:+.1}${}}}",
                delta * 100.0,
                if noise { "$^\\dagger$" } else { "" }
            )
        } else {
            format!(" ({:+.1}{})", delta * 100.0, if noise { "†" } else { "" })
        };
    }
    if incomplete {
        out += if latex { "$^\\ddagger$" } else { "‡" };
    }
    out
}

pub fn display_metric(name: &str) -> String {
    match name {
        "map@r" => "MAP@R".into(),
        "r_precision" => "R-Prec".into(),
        "nmi" => "NMI".into(),
        "f1" => "F1".into(),
        "group_cosine" => "cos".into(),
        "attention_overlap" => "overlap".into(),
        "attention_entropy" => "entropy".into(),
        other => other
            .strip_prefix("recall@")
            .map_or_else(|| other.to_string(), |k| format!("R@{k}")),
    }
}

fn percent(mean: f64, std: f64, pm: &str) -> String {
    if mean.is_nan() {
        "–".into()
    } else if std.is_nan() {
        format!("{:.1}", mean * 100.0)
    } else {
        format!("{:.1} {pm} {:.1}", mean * 100.0, std * 100.0)
    }
}

fn latex_escape(text: &str) -> String {
    text.replace('\\', "\\textbackslash{}")
        .replace('_', "\\_")
        .replace('%', "\\%")
        .replace('&', "\\&")
        .replace('#', "\\#")
        .replace('±', "$\\pm$")
        .replace('†', "$^\\dagger$")
        .replace('‡', "$^\\ddagger$")
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
mod tests {
    use super::*;
    use crate::data::DatasetName;
    use crate::loss::LossName;
    use crate::matrix::AxisValues;
    use crate::model::{BackboneKind, HeadKind};
    use crate::report::index::index_frame;
    use crate::report::runs::{RunRow, Runs};

    fn values(head: HeadKind, groups: usize, loss: LossName, seed: u64) -> AxisValues {
        AxisValues {
            dataset: DatasetName::Synthetic,
            backbone: BackboneKind::ConvnetSmall,
            head,
            loss,
            embedding_size: 8,
            groups,
            seed,
            fold: None,
        }
    }

    fn row(head: HeadKind, groups: usize, seed: u64, recall: f64) -> RunRow {
        row_with(head, groups, LossName::Margin, seed, recall)
    }

    fn row_with(head: HeadKind, groups: usize, loss: LossName, seed: u64, recall: f64) -> RunRow {
        RunRow {
            hash: format!("{head}-{groups}-{loss}-{seed}"),
            dir: Default::default(),
            values: values(head, groups, loss, seed),
            test: vec![
                ("f1".into(), 0.5),
                ("map@r".into(), recall / 2.0),
                ("nmi".into(), 0.4),
                ("r_precision".into(), 0.3),
                ("recall@1".into(), recall),
                ("recall@10".into(), 0.95),
                ("recall@2".into(), 0.9),
            ],
            val: vec![("map@r".into(), 0.6)],
            interpretability: if head == HeadKind::None {
                vec![]
            } else {
                vec![("group_cosine".into(), 0.25)]
            },
            selected_epoch: 1,
        }
    }

    fn tables(runs: &Runs) -> Vec<(Shape, Table)> {
        let aggregate = Aggregate::new(&index_frame(&runs.finished).unwrap(), runs).unwrap();
        Shape::all(&aggregate)
            .into_iter()
            .map(|shape| {
                let table = Table::build("t", &shape, &aggregate);
                (shape, table)
            })
            .collect()
    }

    fn find<'a>(tables: &'a [(Shape, Table)], suffix: &str) -> &'a Table {
        &tables.iter().find(|(s, _)| s.suffix == suffix).unwrap().1
    }

    #[test]
    fn rows_aggregate_seeds_in_matrix_order_and_missing_cells_are_marked() {
        let runs = Runs {
            finished: vec![
                row(HeadKind::None, 1, 0, 0.70),
                row(HeadKind::Attentive, 4, 0, 0.80),
                row(HeadKind::Attentive, 4, 1, 0.90),
            ],
            pending: vec![
                values(HeadKind::None, 1, LossName::Margin, 1),
                values(HeadKind::Gate, 4, LossName::Margin, 0),
            ],
        };
        let tables = tables(&runs);
        let main = find(&tables, "");
        assert_eq!(
            main.metrics
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>(),
            [
                "recall@1",
                "recall@2",
                "recall@10",
                "map@r",
                "r_precision",
                "nmi",
                "f1"
            ]
        );
        let markdown = main.to_markdown();
        assert!(
            markdown.contains(
                "| head | groups | seeds | R@1 | R@2 | R@10 | MAP@R | R-Prec | NMI | F1 |"
            ),
            "{markdown}"
        );
        // Matrix order: none, attentive, gate. The baseline has 1 of its 2 seeds (‡); the
        // attentive mean is 85.0, sample std 7.1 over two seeds, the best, 15 points over the
        // baseline but within noise (the baseline has one seed); gate never ran.
        let lines: Vec<&str> = markdown.lines().filter(|l| l.starts_with("| ")).collect();
        assert!(
            lines[1].starts_with("| none | 1 | 1/2 | 70.0‡ |"),
            "{markdown}"
        );
        assert!(
            lines[2].starts_with("| attentive | 4 | 2 | **85.0 ± 7.1** (+15.0†) |"),
            "{markdown}"
        );
        assert!(
            lines[3].starts_with("| gate | 4 | 0/1 | missing |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("3 of 5 runs finished; 2 missing."),
            "{markdown}"
        );
        let tex = main.to_latex();
        assert!(
            tex.contains("$\\mathbf{85.0 \\pm 7.1}$ {\\scriptsize $+15.0$$^\\dagger$}")
                && tex.contains("\\toprule")
                && tex.contains("& -- &"),
            "{tex}"
        );
        // CSV: one line per row x metric, plus the header.
        let csv = main.to_csv().unwrap();
        assert_eq!(csv.lines().count(), 1 + 3 * 7, "{csv}");
        let line = csv
            .lines()
            .find(|l| l.starts_with("synthetic,convnet-small,margin,8,attentive,4,test,recall@1,"))
            .unwrap_or_else(|| panic!("{csv}"));
        let fields: Vec<&str> = line.split(',').collect();
        let number = |i: usize| fields[i].parse::<f64>().unwrap();
        assert!((number(8) - 0.85).abs() < 1e-12 && (number(9) - 0.0707107).abs() < 1e-6);
        assert_eq!(fields[10..].join(","), "2,2,true,0.15000000000000013,true");
    }

    #[test]
    fn noise_needs_seeds_and_marks_stay_within_a_column() {
        let mut finished = Vec::new();
        for seed in 0..3 {
            let s = 0.001 * seed as f64;
            finished.push(row(HeadKind::None, 1, seed, 0.70 + s));
            finished.push(row(HeadKind::Attentive, 4, seed, 0.80 + s));
            finished.push(row(HeadKind::Gate, 4, seed, 0.70 + 20.0 * s));
        }
        let tables = tables(&Runs {
            finished,
            pending: vec![],
        });
        let main = find(&tables, "");
        let rows = &main.sections[0].rows;
        let cell = |head: &str| rows.iter().find(|r| r.keys[0] == head).unwrap().cells[0];
        // Attentive: +10 points with a tiny spread: a real difference, and the best.
        assert!(cell("attentive").best);
        let (delta, noise) = cell("attentive").delta.unwrap();
        assert!((delta - 0.10).abs() < 1e-9 && !noise);
        // Gate: +2 points with a spread of 2 points over 3 seeds: within noise.
        let (delta, noise) = cell("gate").delta.unwrap();
        assert!((delta - 0.019).abs() < 1e-9 && noise);
        assert!(cell("none").delta.is_none());
        // R@10 is 95.0 everywhere: tied best in every row.
        assert!(rows.iter().all(|r| r.cells[2].best));
        assert!(main.to_markdown().contains("All 9 runs finished."));
    }

    #[test]
    fn each_shape_appears_when_its_axis_varies() {
        let mut finished = Vec::new();
        for loss in [LossName::Margin, LossName::MultiSimilarity] {
            finished.push(row_with(HeadKind::None, 1, loss, 0, 0.70));
            for groups in [1, 2, 4] {
                finished.push(row_with(
                    HeadKind::Attentive,
                    groups,
                    loss,
                    0,
                    0.7 + 0.03 * groups as f64,
                ));
            }
        }
        let tables = tables(&Runs {
            finished,
            pending: vec![],
        });
        let suffixes: Vec<&str> = tables.iter().map(|(s, _)| s.suffix).collect();
        assert_eq!(suffixes, ["", "losses", "groups", "interpretability"]);
        // Loss generality: a column group per loss, Recall@1 and MAP@R in each.
        let losses = find(&tables, "losses").to_markdown();
        assert!(
            losses.contains("| head | groups | seeds | margin R@1 | margin MAP@R | multi-similarity R@1 | multi-similarity MAP@R |"),
            "{losses}"
        );
        assert!(
            losses.contains(
                "| attentive | 4 | 1 | **82.0** (+12.0†) | **41.0** (+6.0†) | **82.0** (+12.0†) |"
            ),
            "{losses}"
        );
        // Ablation: the attentive head only, differences to P = 1, a section per loss.
        let groups = find(&tables, "groups");
        assert_eq!(groups.sections.len(), 2);
        assert_eq!(groups.sections[1].label, "loss multi-similarity");
        let markdown = groups.to_markdown();
        assert!(
            markdown.contains("| attentive | 2 | 1 | 76.0 (+3.0†) |"),
            "{markdown}"
        );
        assert!(!markdown.contains("| none |"));
        // Interpretability: no marks, grouped heads only, cos beside the accuracy.
        let interpretability = find(&tables, "interpretability").to_markdown();
        assert!(
            interpretability.contains("| attentive | 1 | 1 | 73.0 | 36.5 | 25.0 |"),
            "{interpretability}"
        );
    }
}
