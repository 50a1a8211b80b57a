//! Every cell of every committed matrix keeps its hash: the store of a user who upgrades agml
//! stays valid. The pinned lists were written by `agml plan` at b74016e (before the redesign of
//! issue 12); a change that moves one of them is a change of the store contract and must say so.
//! Moved since: paper.toml, by the authors' recipe (issue 13): GoogLeNet's BatchNorm is no
//! longer frozen and it tests at 227 like the authors, SOP's margin beta lr is 1e-5, and
//! attentive-linear cells were added; then the protocol axis (held-out and test-selected),
//! eval_begin and Recall@1 selection; then the photo transform's JPEG `decoder` (libjpeg-turbo,
//! PIL's, where zune-jpeg decoded before: every photo cell has a new hash).
//!
//! A deliberate move: `AGML_BLESS=1 cargo test --release --test hash_pins` rewrites the pins
//! (then say why in the commit and above).

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
        if std::env::var_os("AGML_BLESS").is_some() {
            std::fs::write(&pinned_path, &now).unwrap();
            continue;
        }
        let (now, pinned): (Vec<&str>, Vec<&str>) =
            (now.lines().collect(), pinned.lines().collect());
        let first = now.iter().zip(&pinned).position(|(a, b)| a != b);
        assert!(
            now == pinned,
            "{stem}: {} cells now, {} pinned; first difference at cell {first:?}: {:?} vs {:?}",
            now.len(),
            pinned.len(),
            first.map(|i| now[i]),
            first.map(|i| pinned[i]),
        );
    }
}
