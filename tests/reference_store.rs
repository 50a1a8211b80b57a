//! The committed reference store (`results/reference/fashion-mnist`: each run's cell.toml,
//! manifest.json, metrics.json and history.csv, written by `make reference-store`) is what the
//! committed tables were made from: every cell of experiments/fashion-mnist.toml is done there
//! at this build's semantics, it holds no other run, and the tables it gives are the committed
//! ones byte for byte. A reader checks their `make reproduce` against it with `make compare`,
//! which needs no more of a run than the store keeps.

mod common;

use agml::matrix::Matrix;
use agml::report::{collect_runs, write_tables};
use agml::store::RunStore;
use common::{agml, repo};

#[test]
fn the_reference_store_gives_the_committed_tables() {
    let matrix = Matrix::load(&repo("experiments/fashion-mnist.toml")).unwrap();
    let store = RunStore::new(repo("results/reference/fashion-mnist"));
    let runs = collect_runs(&matrix, &store).unwrap();
    assert!(
        runs.pending.is_empty(),
        "{} cells of the main job are not done at semantics {} in the reference store: rerun \
         `make reproduce` and `make reference-store`",
        runs.pending.len(),
        agml::train::SEMANTICS
    );
    let stored = std::fs::read_dir(repo("results/reference/fashion-mnist/runs"))
        .unwrap()
        .count();
    assert_eq!(
        stored,
        matrix.cells.len(),
        "the reference store holds runs the main job does not name"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (_, report) = write_tables(&matrix, &runs, tmp.path()).unwrap();
    let mut compared = 0;
    for path in &report.written {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.ends_with(".parquet") {
            continue;
        }
        let committed = repo(&format!("paper/tables/{name}"));
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            std::fs::read_to_string(&committed)
                .unwrap_or_else(|e| panic!("{}: {e}", committed.display())),
            "{name}: the committed table is not the reference store's (`make figures` after \
             `make reference-store`)"
        );
        compared += 1;
    }
    assert!(
        compared >= 3,
        "the main job writes at least one table in three formats"
    );
}

#[test]
fn compare_reads_the_reference_store() {
    let reference = repo("results/reference/fashion-mnist");
    let reference = reference.to_str().unwrap();
    let path = repo("experiments/fashion-mnist.toml");
    let cells = Matrix::load(&path).unwrap().cells.len();
    let output = agml(&["compare", reference, reference, path.to_str().unwrap()]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{cells} cells finished in both stores ({cells} with identical test metrics)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("every conclusion holds in both"),
        "{stdout}"
    );
}
