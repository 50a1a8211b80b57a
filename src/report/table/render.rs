//! The three renderings of a table: Markdown, LaTeX (booktabs) and tidy CSV.

use polars::prelude::*;

use super::{Cell, Row, Table};
use crate::report::runs::KEY_COLUMNS;

impl Table {
    fn header_cells(&self) -> Vec<String> {
        let mut header: Vec<String> = self.row_keys.iter().map(|k| k.to_string()).collect();
        header.push("seeds".into());
        let values = self.column_values.len() * self.metrics.len();
        header.extend((0..values).map(|c| self.column_label(c)));
        header
    }

    /// The header of value column `c` of a row: the column value (when the table has several)
    /// and the metric.
    pub fn column_label(&self, c: usize) -> String {
        let metric = display_metric(&self.metrics[c % self.metrics.len()].1);
        match self.column_values.len() {
            1 => metric,
            _ => format!("{} {metric}", self.column_values[c / self.metrics.len()]),
        }
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
        let mut header: Vec<String> = self
            .row_keys
            .iter()
            .map(|k| latex_escape(k.name()))
            .collect();
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
            .map(|(k, v)| Column::new(k.name().into(), v))
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

/// A cell as the Markdown table prints it.
pub fn markdown_cell(cell: &Cell) -> String {
    render(cell, Format::Markdown)
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
        "group_recall@1" => "grp R@1".into(),
        "best_group_recall@1" => "best grp R@1".into(),
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
