//! `agml gc` on a copy of the committed Fashion-MNIST reference store (54 finished runs): it
//! refuses a folder without matrices, lists the runs an edit of the matrix orphaned with what
//! changed, deletes nothing unconfirmed off a terminal, and moves runs whole with `--to`.

mod common;

use std::fs;
use std::path::Path;

use common::{agml, copy_tree, repo};

fn runs(store: &Path) -> usize {
    fs::read_dir(store.join("runs")).map_or(0, |dir| dir.count())
}

fn text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn gc_lists_asks_and_moves_instead_of_deleting_silently() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("results");
    copy_tree(&repo("results/reference/fashion-mnist"), &store);
    let total = runs(&store);
    assert_eq!(total, 54);
    let store_arg = store.to_str().unwrap();

    // A folder without matrices would make every run garbage: refused, exit 2.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = agml(&[
        "gc",
        "--results",
        store_arg,
        "--experiments",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no matrix"), "{}", text(&out));
    assert_eq!(runs(&store), total);

    // The matrix as committed names every run: nothing to list.
    let experiments = dir.path().join("experiments");
    fs::create_dir(&experiments).unwrap();
    let matrix = fs::read_to_string(repo("experiments/fashion-mnist.toml")).unwrap();
    let matrix_path = experiments.join("fashion-mnist.toml");
    fs::write(&matrix_path, &matrix).unwrap();
    let exp_arg = experiments.to_str().unwrap();
    let out = agml(&["gc", "--results", store_arg, "--experiments", exp_arg]);
    assert!(out.status.success());
    assert!(text(&out).starts_with("0 runs"), "{}", text(&out));

    // One value edited: every old run is listed with the change, and kept.
    assert!(matrix.contains("\nepochs = 5\n"));
    fs::write(
        &matrix_path,
        matrix.replace("\nepochs = 5\n", "\nepochs = 6\n"),
    )
    .unwrap();
    let out = agml(&["gc", "--results", store_arg, "--experiments", exp_arg]);
    assert!(out.status.success());
    let listing = text(&out);
    assert!(listing.starts_with("54 runs that no matrix"), "{listing}");
    assert_eq!(
        listing
            .matches("the same cell but train.epochs 5 (now 6)")
            .count(),
        54,
        "{listing}"
    );
    assert_eq!(runs(&store), total);

    // --delete off a terminal without --yes: refused, exit 2, nothing removed.
    let out = agml(&[
        "gc",
        "--results",
        store_arg,
        "--experiments",
        exp_arg,
        "--delete",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    assert_eq!(runs(&store), total);

    // --to with --yes: every run moved whole into the archive store.
    let archive = dir.path().join("archive");
    let archive_arg = archive.to_str().unwrap();
    let to = ["--to", archive_arg, "--yes"];
    let out = agml(
        &[
            &["gc", "--results", store_arg, "--experiments", exp_arg][..],
            &to,
        ]
        .concat(),
    );
    assert!(out.status.success());
    assert_eq!((runs(&store), runs(&archive)), (0, total));
    let original = repo("results/reference/fashion-mnist/runs");
    for entry in fs::read_dir(&original).unwrap() {
        let hash = entry.unwrap().file_name();
        for file in ["cell.toml", "metrics.json", "manifest.json", "history.csv"] {
            assert_eq!(
                fs::read(original.join(&hash).join(file)).unwrap(),
                fs::read(archive.join("runs").join(&hash).join(file)).unwrap()
            );
        }
    }
}
