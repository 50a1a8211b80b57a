//! One table aggregated from the runs index: rows in matrix order, missing and partial
//! cells counted.

use super::marks::{NOISE, mark};
use super::{Baseline, Cell, Row, Section, Shape, Table, assemble_keys, key_index};
use crate::matrix::Axis;
use crate::report::aggregate::{Aggregate, Keys};
use crate::report::runs::KEY_COLUMNS;
use crate::train::Protocol;

/// Where each key column goes in a table of `shape`: rows, the column axis, or sections.
struct Layout<'a> {
    shape: &'a Shape,
    /// The planned key combinations the table shows, in matrix order.
    planned: Vec<Keys>,
    row_index: Vec<usize>,
    column_index: Option<usize>,
    section_index: Vec<usize>,
    column_values: Vec<String>,
    /// Distinct values of the section keys, and which of those keys vary between sections.
    sections: Vec<Vec<String>>,
    varying: Vec<bool>,
}

fn project(keys: &Keys, index: &[usize]) -> Vec<String> {
    index.iter().map(|&i| keys[i].clone()).collect()
}

/// The distinct projections of `keys` on `index`, in first-seen order.
fn distinct<'k>(keys: impl IntoIterator<Item = &'k Keys>, index: &[usize]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for k in keys {
        let p = project(k, index);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

impl<'a> Layout<'a> {
    fn new(shape: &'a Shape, aggregate: &Aggregate) -> Self {
        let keep =
            |k: &Keys| shape.heads.is_empty() || shape.heads.contains(&k[key_index(Axis::Head)]);
        let planned: Vec<Keys> = aggregate.planned_keys().into_iter().filter(keep).collect();
        let row_index: Vec<usize> = shape.rows.iter().map(|k| key_index(*k)).collect();
        let column_index = shape.column.map(key_index);
        let section_index: Vec<usize> = (0..KEY_COLUMNS.len())
            .filter(|i| !row_index.contains(i) && Some(*i) != column_index)
            .collect();
        let column_values: Vec<String> = match column_index {
            Some(i) => distinct(&planned, &[i])
                .into_iter()
                .map(|mut v| v.remove(0))
                .collect(),
            None => vec![String::new()],
        };
        let sections = distinct(&planned, &section_index);
        let varying: Vec<bool> = (0..section_index.len())
            .map(|j| sections.iter().any(|s| s[j] != sections[0][j]))
            .collect();
        Self {
            shape,
            planned,
            row_index,
            column_index,
            section_index,
            column_values,
            sections,
            varying,
        }
    }

    /// "key value" of the keys that are the same in every section (they go to the caption).
    fn constant(&self) -> Vec<String> {
        let mut constant = Vec::new();
        if let (Some(i), [only]) = (self.column_index, self.column_values.as_slice()) {
            constant.push(format!("{} {only}", KEY_COLUMNS[i]));
        }
        if let Some(first) = self.sections.first() {
            constant.extend(
                self.section_index
                    .iter()
                    .zip(first)
                    .zip(&self.varying)
                    .filter(|(_, v)| !**v)
                    .map(|((&i, value), _)| format!("{} {value}", KEY_COLUMNS[i])),
            );
        }
        constant
    }

    /// The rows of one section, marked, and (planned, finished) replicates shown in it.
    fn section(&self, section: &[String], aggregate: &Aggregate) -> (Section, u32, u32) {
        let shape = self.shape;
        let in_section = self
            .planned
            .iter()
            .filter(|k| project(k, &self.section_index) == section);
        let row_values = distinct(in_section, &self.row_index);
        let full_keys = |row: &[String], column: &str| -> Keys {
            assemble_keys(&shape.rows, shape.column, section, row, column)
        };
        let (mut planned, mut finished) = (0, 0);
        let mut rows = Vec::new();
        for row in &row_values {
            let mut cells = Vec::new();
            for column in &self.column_values {
                let keys = full_keys(row, column);
                let stats: Vec<_> = (shape.metrics.iter())
                    .map(|(split, metric)| aggregate.stat(&keys, split, metric))
                    .collect();
                planned += aggregate.planned(&keys);
                finished += stats.iter().flatten().map(|s| s.seeds).max().unwrap_or(0);
                cells.extend(stats.into_iter().map(|stat| Cell {
                    stat,
                    planned: aggregate.planned(&keys),
                    best: false,
                    delta: None,
                }));
            }
            rows.push(Row {
                keys: row.clone(),
                cells,
            });
        }
        if shape.marks {
            mark(&mut rows, &shape.rows, shape.baseline);
        }
        let (names, values): (Vec<String>, Vec<String>) = (self.section_index.iter())
            .zip(section)
            .zip(&self.varying)
            .filter(|(_, v)| **v)
            .map(|((&i, v), _)| (format!("{} {v}", KEY_COLUMNS[i]), v.clone()))
            .unzip();
        let section = Section {
            label: names.join(", "),
            section_keys: section.to_vec(),
            varying: values,
            rows,
        };
        (section, planned, finished)
    }
}

/// The caption: what the table shows, the constant keys, what each protocol shown means and
/// what the marks mean.
fn caption(name: &str, shape: &Shape, constant: &[String], protocols: &[Protocol]) -> String {
    let scope = if constant.is_empty() {
        String::new()
    } else {
        format!(" ({})", constant.join(", "))
    };
    let mut caption = format!("{name}{scope}: {}; mean ± std over seeds", shape.what);
    for protocol in protocols {
        caption += &format!(". Protocol {}", protocol.explained());
    }
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
    caption + "; ‡: not all seeds finished"
}

impl Table {
    /// The table of `shape` over the aggregated runs of the matrix `name`.
    pub fn build(name: &str, shape: &Shape, aggregate: &Aggregate) -> Table {
        let layout = Layout::new(shape, aggregate);
        let (mut planned, mut finished) = (0, 0);
        let mut sections = Vec::new();
        for section in &layout.sections {
            let (section, p, f) = layout.section(section, aggregate);
            sections.push(section);
            (planned, finished) = (planned + p, finished + f);
        }
        let protocols: Vec<Protocol> = Protocol::ALL
            .into_iter()
            .filter(|p| {
                let name = p.to_string();
                layout
                    .planned
                    .iter()
                    .any(|k| k[key_index(Axis::Protocol)] == name)
            })
            .collect();
        Table {
            caption: caption(name, shape, &layout.constant(), &protocols),
            row_keys: shape.rows.clone(),
            column: shape.column,
            column_values: layout.column_values,
            metrics: shape.metrics.clone(),
            sections,
            planned,
            finished,
        }
    }
}
