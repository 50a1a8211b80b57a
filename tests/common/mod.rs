//! Helpers shared by the end-to-end tests: the agml binary, run and logged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Not every test binary that includes this module regenerates weights.
#[allow(dead_code)]
pub mod seeded;
#[allow(dead_code)]
pub mod torch_save;

#[allow(dead_code)] // the fixture tests include this module for its submodules
pub const AGML: &str = env!("CARGO_BIN_EXE_agml");

/// `path` inside the repository (matrices, fixtures).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A file of little-endian float32 values (the fixtures' `.f32` files).
#[allow(dead_code)]
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes.chunks_exact(4))
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Runs `agml args...`, printing its output (shown when a test fails).
#[allow(dead_code)]
pub fn agml(args: &[&str]) -> Output {
    agml_in(Path::new("."), args)
}

/// Runs `agml args...` in the folder `dir` (relative paths in its arguments and in a
/// matrix are relative to it), printing its output.
#[allow(dead_code)]
pub fn agml_in(dir: &Path, args: &[&str]) -> Output {
    let output = (Command::new(AGML).args(args).current_dir(dir))
        .output()
        .expect("agml runs");
    eprintln!(
        "agml {} (in {})\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A copy of a folder tree (a fixture a test may break, a store to alter).
#[allow(dead_code)] // not every test binary that includes this module copies trees
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
