//! `agml compare`: two stores of one matrix agree (exit 0) until a run's metrics move a mark
//! of the table, which is then named with its cell (exit 1); a folder that is not a store is
//! bad input (exit 2).

mod common;

use std::path::Path;

use common::{agml, copy_tree, repo};

/// The run folder of the smoke cell with `head`.
fn run_of(store: &Path, head: &str) -> std::path::PathBuf {
    std::fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|dir| {
            std::fs::read_to_string(dir.join("cell.toml"))
                .is_ok_and(|t| t.starts_with(&format!("head = \"{head}\"")))
        })
        .unwrap_or_else(|| panic!("no {head} run in {}", store.display()))
}

fn recall_at_1(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&text).unwrap();
    metrics["test"]["recall@1"].as_f64().unwrap()
}

#[test]
fn identical_stores_agree_and_a_moved_mark_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let smoke = repo("experiments/smoke.toml");
    let smoke = smoke.to_str().unwrap();
    assert!(
        agml(&["run", smoke, "--results", a.to_str().unwrap()])
            .status
            .success()
    );
    copy_tree(&a, &b);
    let compare = || agml(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), smoke]);

    let same = compare();
    assert_eq!(same.status.code(), Some(0));
    let out = String::from_utf8_lossy(&same.stdout);
    assert!(
        out.contains("2 cells finished in both stores (2 with identical"),
        "{out}"
    );
    assert!(out.contains("every conclusion holds in both"), "{out}");

    // Store B's attentive run moves to the other side of no grouping: the best R@1 of the
    // column changes rows.
    let (none, attentive) = (run_of(&a, "none"), run_of(&b, "attentive"));
    let moved = if recall_at_1(&run_of(&a, "attentive")) > recall_at_1(&none) {
        0.0
    } else {
        1.0
    };
    let path = attentive.join("metrics.json");
    let mut metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    metrics["test"]["recall@1"] = serde_json::json!(moved);
    std::fs::write(&path, serde_json::to_string(&metrics).unwrap()).unwrap();

    let flipped = compare();
    assert_eq!(flipped.status.code(), Some(1));
    let out = String::from_utf8_lossy(&flipped.stdout);
    assert!(out.contains("(1 with identical test metrics)"), "{out}");
    let hash = attentive.file_name().unwrap().to_str().unwrap();
    assert!(
        out.contains(&format!("{} ", &hash[..12])) && out.contains("recall@1"),
        "{out}"
    );
    assert!(
        out.contains("smoke: attentive 2 / R@1: best in column differs"),
        "{out}"
    );
    assert!(
        out.contains("smoke: none 1 / R@1: best in column differs"),
        "{out}"
    );

    // Without the matrix: every run done in both, by hash, and no conclusions to check.
    let runs = agml(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(runs.status.code(), Some(0));
    let out = String::from_utf8_lossy(&runs.stdout);
    assert!(
        out.contains("runs: 2 cells finished in both stores (1 with identical"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: ", &hash[..12])) && out.contains("recall@1"),
        "{out}"
    );
    assert!(out.contains("conclusions were not checked"), "{out}");
}

#[test]
fn a_folder_that_is_not_a_store_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let smoke = repo("experiments/smoke.toml");
    let dir = tmp.path().to_str().unwrap();
    let output = agml(&["compare", dir, dir, smoke.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a store"));
}
