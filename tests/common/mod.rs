//! Helpers shared by the end-to-end tests: the agml binary, run and logged.

use std::process::{Command, Output};

pub const AGML: &str = env!("CARGO_BIN_EXE_agml");

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
