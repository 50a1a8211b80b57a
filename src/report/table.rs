//! The summary table: one row per method (head x groups, and any other axis that varies),
//! each metric as mean +- std over seeds; written as Markdown, LaTeX (booktabs) and CSV.

use std::path::{Path, PathBuf};

use anyhow::Context;
use polars::prelude::*;

use super::runs::{KEY_COLUMNS, RunRow, metric_names, runs_frame};
use crate::store::write_atomic;

/// The aggregated table, ready to render.
#[derive(Debug, Clone)]
pub struct SummaryTable {
    /// Title line (matrix name and the axes constant over the table).
    pub caption: String,
    /// Axis columns that vary across rows (the others are named in the caption).
    pub keys: Vec<String>,
    /// Metric names, in column order.
    pub metrics: Vec<String>,
    /// Per row: key values, number of seeds, and (mean, std) per metric (std NaN for 1 seed).
    pub rows: Vec<SummaryRow>,
    /// Cells of the matrix that are not done.
    pub missing: usize,
    pub total: usize,
    /// The aggregated frame (keys, seeds, `<metric>_mean`, `<metric>_std`).
    pub frame: DataFrame,
}

/// Accuracy columns shown beside the interpretability numbers.
const ACCURACY_NEXT_TO_INTERPRETABILITY: [&str; 2] = ["recall@1", "map@r"];

impl SummaryTable {
    /// The interpretability table: runs with groups or maps, their Recall@1 and MAP@R, and the
    /// group cosine, attention overlap and entropy (no best / baseline marks: lower cosine and
    /// overlap mean more diverse groups, which is not "better" by itself).
    pub fn interpretability(name: &str, rows: &[RunRow]) -> anyhow::Result<SummaryTable> {
        let rows: Vec<RunRow> = rows
            .iter()
            .filter(|r| !r.interpretability.is_empty())
            .map(|r| RunRow {
                test: r
                    .test
                    .iter()
                    .filter(|(k, _)| ACCURACY_NEXT_TO_INTERPRETABILITY.contains(&k.as_str()))
                    .chain(&r.interpretability)
                    .cloned()
                    .collect(),
                ..r.clone()
            })
            .collect();
        let mut table = SummaryTable::aggregate(name, &rows, 0, false)?;
        table.caption = format!(
            "{name}: interpretability of the selected epoch on the test set, next to its accuracy \
             (all in %, mean ± std over seeds). cos: mean pairwise cosine of an image's group \
             embeddings; overlap: mean pairwise Bhattacharyya coefficient of its groups' attention \
             maps (100 identical, 0 disjoint); entropy: attention entropy over positions / log N \
             (100 uniform). Lower cos and overlap mean more distinct groups"
        );
        Ok(table)
    }
}

/// One method's row.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub keys: Vec<String>,
    pub seeds: u32,
    pub values: Vec<(f64, f64)>,
    /// Per metric: the best mean of its block (rows that share every key but head and groups).
    pub best: Vec<bool>,
    /// Per metric: the difference to the block's no-grouping row (none, P = 1) and whether it
    /// is within noise; absent for that row itself or when the block has none.
    pub delta: Vec<Option<(f64, bool)>>,
}

/// Keys that name the method; the other varying keys split the table into blocks.
const METHOD_KEYS: [&str; 2] = ["head", "groups"];

/// A difference is within noise when it is below two standard errors of the difference
/// (normal approximation, sample std over seeds), or when either side has a single seed.
fn within_noise(a: (f64, f64), n_a: u32, b: (f64, f64), n_b: u32) -> bool {
    if n_a < 2 || n_b < 2 || a.1.is_nan() || b.1.is_nan() {
        return true;
    }
    let se = (a.1 * a.1 / f64::from(n_a) + b.1 * b.1 / f64::from(n_b)).sqrt();
    (a.0 - b.0).abs() < 2.0 * se
}

/// Marks each block's best means and each row's difference to its block's baseline.
fn compare_within_blocks(keys: &[String], rows: &mut [SummaryRow]) {
    let block_of = |row: &SummaryRow| -> Vec<String> {
        keys.iter()
            .zip(&row.keys)
            .filter(|(k, _)| !METHOD_KEYS.contains(&k.as_str()))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let head = keys.iter().position(|k| k == "head");
    let groups = keys.iter().position(|k| k == "groups");
    let is_baseline = |row: &SummaryRow| {
        head.is_some_and(|h| row.keys[h] == "none") && groups.is_none_or(|g| row.keys[g] == "1")
    };
    let snapshot: Vec<SummaryRow> = rows.to_vec();
    for row in rows.iter_mut() {
        let block: Vec<&SummaryRow> = snapshot
            .iter()
            .filter(|other| block_of(other) == block_of(row))
            .collect();
        let baseline = block.iter().find(|r| is_baseline(r));
        let own_baseline = is_baseline(row);
        for (m, &(mean, std)) in row.values.iter().enumerate() {
            let top = block
                .iter()
                .map(|r| r.values[m].0)
                .fold(f64::NEG_INFINITY, f64::max);
            row.best[m] = mean == top && block.len() > 1;
            row.delta[m] = match baseline {
                Some(base) if !own_baseline => {
                    let b = base.values[m];
                    Some((
                        mean - b.0,
                        within_noise((mean, std), row.seeds, b, base.seeds),
                    ))
                }
                _ => None,
            };
        }
    }
}

/// Metric display order: Recall@K by K, then MAP@R, R-Precision, NMI, F1, then any other by
/// name.
fn metric_order(names: &[String]) -> Vec<String> {
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
    ordered.extend(
        names
            .iter()
            .filter(|n| !n.starts_with("recall@") && !KNOWN.contains(&n.as_str()))
            .cloned(),
    );
    ordered
}

impl SummaryTable {
    /// Aggregates finished runs over seeds, with each block's best and the differences to
    /// its no-grouping baseline marked.
    pub fn build(name: &str, rows: &[RunRow], missing: usize) -> anyhow::Result<SummaryTable> {
        Self::aggregate(name, rows, missing, true)
    }

    /// Aggregates finished runs over seeds; `marks`: compare within blocks (best, baseline).
    fn aggregate(
        name: &str,
        rows: &[RunRow],
        missing: usize,
        marks: bool,
    ) -> anyhow::Result<SummaryTable> {
        let total = rows.len() + missing;
        let runs = runs_frame(rows)?;
        let metrics = metric_order(&metric_names(rows));
        let group_keys: Vec<&str> = KEY_COLUMNS
            .iter()
            .copied()
            .filter(|k| *k != "seed")
            .collect();
        // Keys that vary across runs become columns; constant ones go to the caption.
        let mut keys = Vec::new();
        let mut constant = Vec::new();
        for key in &group_keys {
            let column = runs.column(key)?;
            if column.n_unique()? > 1 || matches!(*key, "head" | "groups") {
                keys.push(key.to_string());
            } else if let Some(value) = column.get(0).ok().map(|v| v.to_string()) {
                constant.push(format!("{key} {}", value.trim_matches('"')));
            }
        }
        let mut aggs = vec![len().alias("seeds")];
        for m in &metrics {
            aggs.push(col(m.as_str()).mean().alias(format!("{m}_mean")));
            aggs.push(col(m.as_str()).std(1).alias(format!("{m}_std")));
        }
        let by: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
        let frame = if rows.is_empty() {
            DataFrame::empty()
        } else {
            runs.lazy()
                .group_by(by)
                .agg(aggs)
                .sort(keys.clone(), SortMultipleOptions::default())
                .collect()?
        };
        let mut summary_rows = Vec::new();
        for i in 0..frame.height() {
            let mut key_values = Vec::new();
            for k in &keys {
                let value = frame.column(k)?.get(i)?;
                key_values.push(value.to_string().trim_matches('"').to_string());
            }
            let seeds = frame
                .column("seeds")?
                .cast(&DataType::UInt32)?
                .u32()?
                .get(i)
                .unwrap_or(0);
            let mut values = Vec::new();
            for m in &metrics {
                let mean = frame
                    .column(&format!("{m}_mean"))?
                    .f64()?
                    .get(i)
                    .unwrap_or(f64::NAN);
                let std = frame
                    .column(&format!("{m}_std"))?
                    .f64()?
                    .get(i)
                    .unwrap_or(f64::NAN);
                values.push((mean, std));
            }
            let count = values.len();
            summary_rows.push(SummaryRow {
                keys: key_values,
                seeds,
                values,
                best: vec![false; count],
                delta: vec![None; count],
            });
        }
        if marks {
            compare_within_blocks(&keys, &mut summary_rows);
        }
        let scope = if constant.is_empty() {
            String::new()
        } else {
            format!(" ({})", constant.join(", "))
        };
        let caption = format!(
            "{name}{scope}: test metrics (%) of the epoch selected on validation, mean ± std over \
             seeds. Bold: best of its block; (+x): difference to no grouping (none, P = 1) of the \
             same block; †: within noise (below two standard errors of the difference, or a single seed)"
        );
        Ok(SummaryTable {
            caption,
            keys,
            metrics,
            rows: summary_rows,
            missing,
            total,
            frame,
        })
    }

    fn status_line(&self) -> String {
        if self.missing == 0 {
            format!("All {} cells finished.", self.total)
        } else {
            format!(
                "{} of {} cells finished; {} missing.",
                self.total - self.missing,
                self.total,
                self.missing
            )
        }
    }

    /// Markdown: `| head | groups | seeds | recall@1 | ... |`, values in percent.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("{}\n\n", self.caption);
        let mut header: Vec<String> = self.keys.clone();
        header.push("seeds".into());
        header.extend(self.metrics.iter().map(|m| display_metric(m)));
        out += &format!("| {} |\n", header.join(" | "));
        out += &format!("|{}\n", header.iter().map(|_| "---|").collect::<String>());
        for row in &self.rows {
            let mut cells = row.keys.clone();
            cells.push(row.seeds.to_string());
            for (m, &(mean, std)) in row.values.iter().enumerate() {
                let mut cell = percent(mean, std, "±");
                if row.best[m] {
                    cell = format!("**{cell}**");
                }
                if let Some((delta, noise)) = row.delta[m] {
                    cell += &format!(" ({:+.1}{})", delta * 100.0, if noise { "†" } else { "" });
                }
                cells.push(cell);
            }
            out += &format!("| {} |\n", cells.join(" | "));
        }
        out += &format!("\n{}\n", self.status_line());
        out
    }

    /// A LaTeX `table` with booktabs rules, ready to `\input`.
    pub fn to_latex(&self) -> String {
        let columns = self.keys.len() + 1 + self.metrics.len();
        let mut out = String::from("\\begin{table}[t]\n\\centering\n");
        out += &format!(
            "\\caption{{{}. {}}}\n",
            latex_escape(&self.caption),
            latex_escape(&self.status_line())
        );
        out += &format!(
            "\\begin{{tabular}}{{{}}}\n\\toprule\n",
            "l".repeat(self.keys.len() + 1) + &"r".repeat(columns - self.keys.len() - 1)
        );
        let mut header: Vec<String> = self.keys.iter().map(|k| latex_escape(k)).collect();
        header.push("seeds".into());
        header.extend(
            self.metrics
                .iter()
                .map(|m| latex_escape(&display_metric(m))),
        );
        out += &format!("{} \\\\\n\\midrule\n", header.join(" & "));
        for row in &self.rows {
            let mut cells: Vec<String> = row.keys.iter().map(|k| latex_escape(k)).collect();
            cells.push(row.seeds.to_string());
            for (m, &(mean, std)) in row.values.iter().enumerate() {
                let value = percent(mean, std, "\\pm");
                let mut cell = if row.best[m] {
                    format!("$\\mathbf{{{value}}}$")
                } else {
                    format!("${value}$")
                };
                if let Some((delta, noise)) = row.delta[m] {
                    cell += &format!(
                        " {{\\scriptsize ${:+.1}${}}}",
                        delta * 100.0,
                        if noise { "$^\\dagger$" } else { "" }
                    );
                }
                cells.push(cell);
            }
            out += &format!("{} \\\\\n", cells.join(" & "));
        }
        out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
        out
    }

    /// CSV of the aggregated frame (fractions, full precision).
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut frame = self.frame.clone();
        let mut buffer = Vec::new();
        CsvWriter::new(&mut buffer).finish(&mut frame)?;
        Ok(String::from_utf8(buffer)?)
    }
}

fn display_metric(name: &str) -> String {
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
}

/// Writes `<out>/tables/<name>.{md,tex,csv}`; returns the paths.
pub fn write_summary_tables(
    table: &SummaryTable,
    out: &Path,
    name: &str,
) -> anyhow::Result<Vec<PathBuf>> {
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

    fn row(head: HeadKind, groups: usize, seed: u64, recall: f64) -> RunRow {
        RunRow {
            hash: format!("{head}-{groups}-{seed}"),
            values: AxisValues {
                dataset: DatasetName::Synthetic,
                backbone: BackboneKind::ConvnetSmall,
                head,
                loss: LossName::Margin,
                embedding_size: 8,
                groups,
                seed,
                fold: None,
            },
            test: vec![
                ("f1".into(), 0.5),
                ("map@r".into(), recall / 2.0),
                ("nmi".into(), 0.4),
                ("r_precision".into(), 0.3),
                ("recall@1".into(), recall),
                ("recall@10".into(), 0.95),
                ("recall@2".into(), 0.9),
            ],
            interpretability: if head == HeadKind::None {
                vec![]
            } else {
                vec![("group_cosine".into(), 0.25)]
            },
            selected_epoch: 1,
        }
    }

    #[test]
    fn the_interpretability_table_keeps_grouped_runs_beside_their_accuracy() {
        let mut rows = vec![
            row(HeadKind::Attentive, 4, 0, 0.80),
            row(HeadKind::None, 1, 0, 0.70),
            row(HeadKind::Gate, 4, 0, 0.75),
        ];
        rows[0]
            .interpretability
            .push(("attention_overlap".into(), 0.5));
        let table = SummaryTable::interpretability("t", &rows).unwrap();
        assert_eq!(
            table.rows.len(),
            2,
            "the no-grouping run has nothing to show"
        );
        assert_eq!(
            table.metrics,
            vec!["recall@1", "map@r", "group_cosine", "attention_overlap"]
        );
        let markdown = table.to_markdown();
        assert!(
            markdown.contains("| attentive | 4 | 1 | 80.0 | 40.0 | 25.0 | 50.0 |"),
            "{markdown}"
        );
        // The gate run has no overlap here: a dash, not NaN.
        assert!(
            markdown.contains("| gate | 4 | 1 | 75.0 | 37.5 | 25.0 | – |"),
            "{markdown}"
        );
    }

    #[test]
    fn rows_aggregate_seeds_and_metrics_keep_their_order() {
        let rows = vec![
            row(HeadKind::Attentive, 4, 0, 0.80),
            row(HeadKind::Attentive, 4, 1, 0.90),
            row(HeadKind::None, 1, 0, 0.70),
        ];
        let table = SummaryTable::build("t", &rows, 1).unwrap();
        assert_eq!(table.keys, vec!["head", "groups"]);
        assert_eq!(
            table.metrics,
            vec![
                "recall@1",
                "recall@2",
                "recall@10",
                "map@r",
                "r_precision",
                "nmi",
                "f1"
            ]
        );
        let markdown = table.to_markdown();
        assert!(
            markdown.contains(
                "| head | groups | seeds | R@1 | R@2 | R@10 | MAP@R | R-Prec | NMI | F1 |"
            ),
            "{markdown}"
        );
        // Mean 85.0, sample std 7.1 over the two seeds, the best of the table, 15 points over
        // the baseline but within noise (one seed); a single seed has no std.
        assert!(
            markdown.contains("| attentive | 4 | 2 | **85.0 ± 7.1** (+15.0†) |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| none | 1 | 1 | 70.0 | **90.0** |"),
            "{markdown}"
        );
        assert!(markdown.contains("3 of 4 cells finished; 1 missing."));
        let csv = table.to_csv().unwrap();
        assert_eq!(csv.lines().count(), 3);
        let tex = table.to_latex();
        assert!(
            tex.contains("$\\mathbf{85.0 \\pm 7.1}$ {\\scriptsize $+15.0$$^\\dagger$}")
                && tex.contains("\\toprule"),
            "{tex}"
        );
    }

    #[test]
    fn blocks_compare_within_themselves_and_noise_needs_seeds() {
        let mut rows = Vec::new();
        for seed in 0..3 {
            rows.push(row(HeadKind::None, 1, seed, 0.70 + 0.001 * seed as f64));
            rows.push(row(
                HeadKind::Attentive,
                4,
                seed,
                0.80 + 0.001 * seed as f64,
            ));
            rows.push(row(HeadKind::Gate, 4, seed, 0.70 + 0.02 * seed as f64));
        }
        let table = SummaryTable::build("t", &rows, 0).unwrap();
        let find = |head: &str| table.rows.iter().find(|r| r.keys[0] == head).unwrap();
        // Attentive: +10 points with tiny spread: a real difference, and the best.
        let attentive = find("attentive");
        assert!(attentive.best[0]);
        let (delta, noise) = attentive.delta[0].unwrap();
        assert!((delta - 0.10).abs() < 1e-9 && !noise);
        // Gate: +2 points with a spread of 2 points over 3 seeds: within noise.
        let (delta, noise) = find("gate").delta[0].unwrap();
        assert!((delta - 0.019).abs() < 1e-9 && noise);
        assert!(find("none").delta[0].is_none());
        assert!(within_noise((0.5, 0.01), 3, (0.5, 0.01), 3));
        assert!(!within_noise((0.6, 0.01), 3, (0.5, 0.01), 3));
    }
}
