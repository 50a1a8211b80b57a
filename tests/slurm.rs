//! The SLURM executor for real: the smoke matrix submitted as one job array to the cluster
//! this machine runs (`tests/slurm/start-cluster`; .ci/run starts one). Skipped, with the
//! reason printed, where no SLURM controller answers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{agml, repo};

fn slurm_answers() -> bool {
    Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn status(matrix: &str, results: &str) -> serde_json::Value {
    let out = agml(&["status", matrix, "--results", results, "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("status --json")
}

fn submissions(results: &Path) -> usize {
    std::fs::read_dir(results.join("slurm")).map_or(0, |d| d.count())
}

#[test]
fn the_smoke_matrix_runs_as_a_job_array_and_is_never_submitted_twice() {
    if !slurm_answers() {
        eprintln!(
            "skipped: no SLURM controller answers `sinfo` here (tests/slurm/start-cluster starts one)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let smoke = repo("experiments/smoke.toml");
    let (smoke, results_s) = (smoke.to_str().unwrap(), results.to_str().unwrap());

    let out = agml(&["run", smoke, "--results", results_s, "--executor", "slurm"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("submitted job array"));
    assert_eq!(submissions(&results), 1);

    // While the array is queued or running, a second submit holds nothing back but sends
    // nothing either.
    let first = status(smoke, results_s);
    let held = first["queued"].as_u64().unwrap() + first["running"].as_u64().unwrap();
    let done = first["done"].as_u64().unwrap();
    assert_eq!(held + done, 2, "every cell is on SLURM or done: {first}");
    if held == 2 {
        let again = agml(&["run", smoke, "--results", results_s, "--executor", "slurm"]);
        assert!(again.status.success());
        assert!(String::from_utf8_lossy(&again.stdout).contains("already queued or running"));
        assert_eq!(submissions(&results), 1);
    }

    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let now = status(smoke, results_s);
        if now["done"] == 2 {
            break;
        }
        assert_eq!(now["failed"], 0, "a cell failed on SLURM: {now}");
        assert!(Instant::now() < deadline, "the array did not finish: {now}");
        std::thread::sleep(Duration::from_secs(2));
    }
    let out = agml(&["run", smoke, "--results", results_s, "--executor", "slurm"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert_eq!(submissions(&results), 1, "a finished matrix queues nothing");
    let verify = agml(&["verify", "--results", results_s]);
    assert!(verify.status.success());
}

#[test]
fn run_cell_rejects_what_is_not_a_queued_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let out = agml(&["run-cell", "not-a-hash", "--results", results]);
    assert_eq!(out.status.code(), Some(2));
    let hash = "0".repeat(64);
    let out = agml(&["run-cell", &hash, "--results", results]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue"));
}
