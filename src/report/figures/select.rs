//! Which runs each figure shows, chosen from the aggregated tables: every figure of a matrix
//! from its stored artifacts.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::curves::{History, LineFigure, Panel, Series};
use super::projection::{EmbeddingProjection, ProjectionPanel};
use super::{AttentionFigure, extent, save};
use crate::matrix::Axis;
use crate::report::aggregate::{Aggregate, Keys};
use crate::report::runs::{KEY_COLUMNS, RunRow, Runs};
use crate::report::table::{Section, Table, display_metric, key_index};
use crate::store::{EmbeddedSet, RunFile};
use crate::train::Protocol;

/// The first finished replicate (matrix order: lowest seed, then fold) with these keys.
fn first_run<'a>(runs: &'a Runs, keys: &Keys) -> Option<&'a RunRow> {
    runs.finished.iter().find(|r| {
        KEY_COLUMNS
            .iter()
            .zip(keys)
            .all(|(k, v)| r.values.get(*k).as_ref() == Some(v))
    })
}

fn method(row: &[String]) -> String {
    format!("{} P={}", row[0], row[1])
}

fn slug(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The dataset and the section's varying values: "fashion-mnist · margin" in titles,
/// "fashion-mnist-margin" in file names.
fn scope_parts<'a>(dataset: &'a str, section: &'a Section) -> Vec<&'a str> {
    std::iter::once(dataset)
        .chain(section.varying.iter().map(String::as_str))
        .collect()
}

fn scope(dataset: &str, section: &Section) -> String {
    scope_parts(dataset, section).join(" · ")
}

fn scope_slug(dataset: &str, section: &Section) -> String {
    slug(&scope_parts(dataset, section))
}

/// Writes every figure of `name` into `<out>/figures/`; returns the files written.
pub fn write_figures(
    name: &str,
    runs: &Runs,
    aggregate: &Aggregate,
    main: &Table,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.join("figures");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    if runs.finished.is_empty() {
        return Ok(written);
    }
    written.extend(save(&recall_curves(name, main), &dir, "recall-at-k")?);
    if let Some(figure) = group_ablation(name, aggregate) {
        written.extend(save(&figure, &dir, "groups")?);
    }
    for section in &main.sections {
        for dataset in &main.column_values {
            let tag = scope_slug(dataset, section);
            let figure = training_curves(name, runs, main, section, dataset)?;
            if !figure.panels.is_empty() {
                written.extend(save(&figure, &dir, &format!("training-{tag}"))?);
            }
            if let Some(figure) = projection(name, runs, main, section, dataset)? {
                written.extend(save(&figure, &dir, &format!("embeddings-{tag}"))?);
            }
        }
    }
    // Attention figures for the first section and each dataset: a handful, not all runs.
    if let Some(section) = main.sections.first() {
        for dataset in &main.column_values {
            for row in &section.rows {
                let keys = main.full_keys(section, &row.keys, dataset);
                let Some(run) = first_run(runs, &keys) else {
                    continue;
                };
                let (head, groups) = (&row.keys[0], &row.keys[1]);
                let what = if head == "gate" { "mask" } else { "attention" };
                let bgr = run.values.backbone == crate::model::BackboneKind::Bninception;
                let title = format!(
                    "{name}: {what} of {head} P={groups} ({}, seed {}, epoch {})",
                    scope(dataset, section),
                    run.values.seed,
                    run.selected_epoch
                );
                if let Some(figure) = AttentionFigure::load(&run.dir, title, what, bgr)? {
                    let stem = format!(
                        "attention-{}",
                        slug(&[dataset, head, &format!("p{groups}")])
                    );
                    written.extend(save(&figure, &dir, &stem)?);
                }
            }
        }
    }
    Ok(written)
}

/// Recall@K against K per method, one panel per section and dataset, error bars over seeds.
fn recall_curves(name: &str, main: &Table) -> LineFigure {
    let recall: Vec<(usize, f64)> = main
        .metrics
        .iter()
        .enumerate()
        .filter_map(|(i, (_, m))| {
            m.strip_prefix("recall@")
                .and_then(|k| k.parse::<f64>().ok())
                .map(|k| (i, k.log2()))
        })
        .collect();
    let mut panels = Vec::new();
    for section in &main.sections {
        for (c, dataset) in main.column_values.iter().enumerate() {
            let offset = c * main.metrics.len();
            let series = section
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, row)| {
                    let points: Vec<(f64, f64, Option<f64>)> = recall
                        .iter()
                        .filter_map(|&(m, x)| {
                            row.cells[offset + m]
                                .stat
                                .map(|s| (x, s.mean * 100.0, Some(s.std * 100.0)))
                        })
                        .collect();
                    (!points.is_empty()).then(|| Series {
                        name: method(&row.keys),
                        points,
                        colour: i,
                        ..Series::default()
                    })
                })
                .collect();
            panels.push(Panel {
                title: scope(dataset, section),
                x_label: "K".into(),
                y_label: "Recall@K (%)".into(),
                x_log2: true,
                series,
            });
        }
    }
    LineFigure {
        title: format!("{name}: Recall@K on the test set"),
        columns: panels.len().min(3),
        panels,
        note: "mean over seeds; bars: ± one standard deviation".into(),
    }
}

/// Recall@1 and MAP@R against P for every head run at several group counts, one line per
/// head and section; the no-grouping baseline as a faint line.
fn group_ablation(name: &str, aggregate: &Aggregate) -> Option<LineFigure> {
    let (head_at, groups_at) = (key_index(Axis::Head), key_index(Axis::Groups));
    let mut lines: Vec<(Keys, Vec<String>)> = Vec::new(); // (keys without groups, group values)
    for keys in aggregate.planned_keys() {
        let mut base = keys.clone();
        base[groups_at].clear();
        match lines.iter_mut().find(|(b, _)| *b == base) {
            Some((_, groups)) => groups.push(keys[groups_at].clone()),
            None => lines.push((base, vec![keys[groups_at].clone()])),
        }
    }
    lines.retain(|(_, groups)| groups.len() > 1);
    if lines.is_empty() {
        return None;
    }
    // Name each line by the keys that vary between lines.
    let varying: Vec<usize> = (0..KEY_COLUMNS.len())
        .filter(|&i| i != groups_at && lines.iter().any(|(b, _)| b[i] != lines[0].0[i]))
        .collect();
    // Lines name their head, and the other keys that vary between lines.
    let label = |base: &Keys, head: bool| {
        let prefix = if head {
            format!("{} ", base[head_at])
        } else {
            String::new()
        };
        prefix
            + &varying
                .iter()
                .filter(|&&i| i != head_at)
                .map(|&i| base[i].clone())
                .collect::<Vec<_>>()
                .join(" · ")
    };
    let panels = [("recall@1", "Recall@1 (%)"), ("map@r", "MAP@R (%)")]
        .into_iter()
        .map(|(metric, title)| ablation_panel(aggregate, &lines, metric, title, &label))
        .collect();
    Some(LineFigure {
        title: format!("{name}: number of groups"),
        columns: 2,
        panels,
        note: "mean over seeds; bars: ± one standard deviation; faint: no grouping (none, P = 1)"
            .into(),
    })
}

/// One metric of the group ablation: a line per (keys without groups, their group counts),
/// each with its no-grouping baseline as a faint line over the same range.
fn ablation_panel(
    aggregate: &Aggregate,
    lines: &[(Keys, Vec<String>)],
    metric: &str,
    title: &str,
    label: &dyn Fn(&Keys, bool) -> String,
) -> Panel {
    let (head_at, groups_at) = (key_index(Axis::Head), key_index(Axis::Groups));
    let mut series = Vec::new();
    for (colour, (base, groups)) in lines.iter().enumerate() {
        let points: Vec<(f64, f64, Option<f64>)> = groups
            .iter()
            .filter_map(|g| {
                let mut keys = base.clone();
                keys[groups_at] = g.clone();
                let stat = aggregate.stat(&keys, "test", metric)?;
                let p: f64 = g.parse().ok()?;
                Some((p.log2(), stat.mean * 100.0, Some(stat.std * 100.0)))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let mut none = base.clone();
        none[head_at] = "none".into();
        none[groups_at] = "1".into();
        if let (Some(stat), Some((lo, hi))) = (
            aggregate.stat(&none, "test", metric),
            extent(points.iter().map(|p| p.0)),
        ) {
            series.push(Series {
                name: format!("none {}", label(base, false)).trim().to_string(),
                points: vec![(lo, stat.mean * 100.0, None), (hi, stat.mean * 100.0, None)],
                colour,
                faint: true,
                ..Series::default()
            });
        }
        series.push(Series {
            name: label(base, true),
            points,
            colour,
            ..Series::default()
        });
    }
    Panel {
        title: title.into(),
        x_label: "groups P".into(),
        y_label: title.into(),
        x_log2: true,
        series,
    }
}

/// Training loss and the validation selection metric per epoch for the first replicate of
/// each method, the selected epoch circled.
fn training_curves(
    name: &str,
    runs: &Runs,
    main: &Table,
    section: &Section,
    dataset: &str,
) -> anyhow::Result<LineFigure> {
    let mut loss = Vec::new();
    let mut val = Vec::new();
    // A section holds one protocol: its runs select on `val` (held-out) or `test`.
    let mut protocol = Protocol::HeldOut;
    let mut selection = String::new();
    for (i, row) in section.rows.iter().enumerate() {
        let Some(run) = first_run(runs, &main.full_keys(section, &row.keys, dataset)) else {
            continue;
        };
        protocol = run.values.protocol;
        let split = protocol.selection_split();
        let history = History::read(&run.dir.join(RunFile::History.name()))?;
        if !history.columns.contains(&selection) {
            selection = history.selection_column(split);
        }
        let selected = run.selected_epoch as f64;
        if let Some(points) = history.series("loss") {
            loss.push(Series {
                name: method(&row.keys),
                points: points.iter().map(|&(x, y)| (x, y, None)).collect(),
                colour: i,
                ..Series::default()
            });
        }
        if let Some(points) = history.series(&selection) {
            val.push(Series {
                name: method(&row.keys),
                marked: points
                    .iter()
                    .filter(|p| p.0 == selected)
                    .map(|&(x, y)| (x, y * 100.0))
                    .collect(),
                points: points.iter().map(|&(x, y)| (x, y * 100.0, None)).collect(),
                colour: i,
                ..Series::default()
            });
        }
    }
    let split = protocol.selection_split();
    let metric = display_metric(selection.trim_start_matches(&format!("{split}_")));
    let mut panels = Vec::new();
    if !loss.is_empty() {
        panels.push(Panel {
            title: "training loss (metric + diversity)".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            x_log2: false,
            series: loss,
        });
    }
    if !val.is_empty() {
        panels.push(Panel {
            title: selection_title(protocol, &metric),
            x_label: "epoch".into(),
            y_label: format!("{metric} (%)"),
            x_log2: false,
            series: val,
        });
    }
    Ok(LineFigure {
        title: format!("{name}: training ({}, first seed)", scope(dataset, section)),
        columns: 2,
        panels,
        note: selection_note(protocol).into(),
    })
}

/// The title of the selection metric's panel under `protocol`.
fn selection_title(protocol: Protocol, metric: &str) -> String {
    match protocol {
        Protocol::HeldOut => format!("validation {metric}"),
        Protocol::TestSelected => format!("test {metric} (selects: test-selected)"),
    }
}

/// What the circled epoch is under `protocol`.
fn selection_note(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::HeldOut => {
            "circle: the epoch selected on validation (its checkpoint gives the test numbers)"
        }
        Protocol::TestSelected => "circle: the epoch with the best test score (reported)",
    }
}

/// Test embeddings of no grouping and of the best method by Recall@1 (first replicate each).
fn projection(
    name: &str,
    runs: &Runs,
    main: &Table,
    section: &Section,
    dataset: &str,
) -> anyhow::Result<Option<EmbeddingProjection>> {
    let column = main
        .column_values
        .iter()
        .position(|c| c == dataset)
        .unwrap_or(0);
    let recall1 = main.metrics.iter().position(|(_, m)| m == "recall@1");
    let cell = |row: &crate::report::table::Row| {
        recall1.and_then(|m| row.cells[column * main.metrics.len() + m].stat)
    };
    let best = section
        .rows
        .iter()
        .filter(|r| cell(r).is_some())
        .max_by(|a, b| cell(a).unwrap().mean.total_cmp(&cell(b).unwrap().mean));
    let none = section.rows.iter().find(|r| r.keys[0] == "none");
    let mut chosen: Vec<&crate::report::table::Row> = none.into_iter().collect();
    if let Some(best) = best
        && !chosen.iter().any(|r| r.keys == best.keys)
    {
        chosen.push(best);
    }
    let mut panels = Vec::new();
    let mut classes = Vec::new();
    for row in chosen {
        let Some(run) = first_run(runs, &main.full_keys(section, &row.keys, dataset)) else {
            continue;
        };
        if !run
            .dir
            .join(RunFile::Embeddings(EmbeddedSet::Test).name())
            .exists()
        {
            continue;
        }
        let recall = run
            .test
            .iter()
            .find(|(k, _)| k == "recall@1")
            .map_or(String::new(), |(_, r)| format!(", R@1 {:.1} %", r * 100.0));
        let (panel, labels) = ProjectionPanel::load(
            &run.dir,
            format!("{} (seed {}{recall})", method(&row.keys), run.values.seed),
        )?;
        panels.push(panel);
        classes = labels;
    }
    Ok((!panels.is_empty()).then(|| EmbeddingProjection {
        title: format!(
            "{name}: test embeddings, first two principal components ({})",
            scope(dataset, section)
        ),
        panels,
        classes,
    }))
}
