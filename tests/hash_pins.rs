//! Every cell of every committed matrix keeps its hash: the store of a user who upgrades agml
//! stays valid. The pinned lists were written by `agml plan` at b74016e (before the redesign of
//! issue 12); a change that moves one of them is a change of the store contract and must say so.

use std::path::{Path, PathBuf};

use agml::matrix::Matrix;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_committed_matrices_keep_their_cell_hashes() {
    let experiments = repo("experiments");
    let mut matrices: Vec<_> = std::fs::read_dir(&experiments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    matrices.sort();
    assert!(matrices.len() >= 4, "the committed matrices: {matrices:?}");
    for path in matrices {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let pinned_path = repo(&format!("tests/fixtures/hashes/{stem}.txt"));
        let pinned = std::fs::read_to_string(&pinned_path)
            .unwrap_or_else(|e| panic!("{}: {e}", pinned_path.display()));
        let matrix = Matrix::load(Path::new(&path)).unwrap();
        let now: String = matrix
            .cells
            .iter()
            .map(|c| format!("{} {}\n", c.hash, c.values))
            .collect();
        assert_eq!(now, pinned, "{stem}: cell hashes or their order moved");
    }
}
