//! Helpers shared by the end-to-end tests: the agml binary, run and logged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const AGML: &str = env!("CARGO_BIN_EXE_agml");

/// `path` inside the repository (matrices, fixtures).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `agml args...`, printing its output (shown when a test fails).
pub fn agml(args: &[&str]) -> Output {
    let output = Command::new(AGML).args(args).output().expect("agml runs");
    eprintln!(
        "agml {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
