//! Tests of the table engine: aggregation, order, marks, noise and every shape.

use super::*;
use crate::data::DatasetName;
use crate::loss::LossName;
use crate::matrix::AxisValues;
use crate::model::{BackboneKind, HeadKind};
use crate::report::aggregate::Aggregate;
use crate::report::index::index_frame;
use crate::report::runs::{RunRow, Runs};
use crate::train::Protocol;

fn values(head: HeadKind, groups: usize, loss: LossName, seed: u64) -> AxisValues {
    AxisValues {
        protocol: Protocol::HeldOut,
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
        markdown
            .contains("| head | groups | seeds | R@1 | R@2 | R@10 | MAP@R | R-Prec | NMI | F1 |"),
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
        .find(|l| {
            l.starts_with("held-out,synthetic,convnet-small,margin,8,attentive,4,test,recall@1,")
        })
        .unwrap_or_else(|| panic!("{csv}"));
    let fields: Vec<&str> = line.split(',').collect();
    let number = |i: usize| fields[i].parse::<f64>().unwrap();
    assert!((number(9) - 0.85).abs() < 1e-12 && (number(10) - 0.0707107).abs() < 1e-6);
    assert_eq!(fields[11..].join(","), "2,2,true,0.15000000000000013,true");
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

#[test]
fn protocols_are_separate_sections_each_explained_in_the_caption() {
    let mut finished = Vec::new();
    for (protocol, recall) in [(Protocol::HeldOut, 0.70), (Protocol::TestSelected, 0.75)] {
        for head in [HeadKind::None, HeadKind::Attentive] {
            let mut run = row(head, 1, 0, recall);
            run.values.protocol = protocol;
            run.hash = format!("{}-{protocol}", run.hash);
            finished.push(run);
        }
    }
    let tables = tables(&Runs {
        finished,
        pending: vec![],
    });
    let main = find(&tables, "");
    let labels: Vec<&str> = main.sections.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["protocol held-out", "protocol test-selected"]);
    assert!(
        main.caption
            .contains("Protocol held-out: the epoch selected on a validation split")
            && main
                .caption
                .contains("Protocol test-selected: all training classes"),
        "{}",
        main.caption
    );
    // Never mixed: each section's none row holds its own protocol's number.
    let markdown = main.to_markdown();
    assert!(
        markdown.contains("| none | 1 | 1 | **70.0** |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| none | 1 | 1 | **75.0** |"),
        "{markdown}"
    );
}
