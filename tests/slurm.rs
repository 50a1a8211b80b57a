//! The SLURM executor for real: the smoke matrix submitted as one job array to the cluster
//! this machine runs (`tests/slurm/start-cluster`; .ci/run starts one). Skipped, with the
//! reason printed, where no SLURM controller answers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{agml, repo};

/// Whether a SLURM controller answers; says loudly when not (the test is then skipped).
fn slurm_answers() -> bool {
    let answers = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        eprintln!(
            "SKIPPED: no SLURM controller answers `sinfo` here (tests/slurm/start-cluster starts one)"
        );
    }
    answers
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

    // `status --watch` follows the array until nothing is queued, running or training.
    let watched = Command::new("timeout")
        .args([
            "900",
            common::AGML,
            "status",
            smoke,
            "--results",
            results_s,
            "--watch",
            "1",
        ])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&watched.stdout).into_owned();
    assert!(
        watched.status.success(),
        "the array did not finish:\n{lines}"
    );
    let last = lines.lines().last().unwrap_or_default();
    assert!(last.contains("2 cells: 2 done"), "{lines}");
    let now = status(smoke, results_s);
    assert_eq!(
        (&now["done"], &now["failed"]),
        (&2.into(), &0.into()),
        "{now}"
    );
    let out = agml(&["run", smoke, "--results", results_s, "--executor", "slurm"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert_eq!(submissions(&results), 1, "a finished matrix queues nothing");
    let verify = agml(&["verify", "--results", results_s]);
    assert!(verify.status.success());
}

#[test]
fn a_cell_past_its_time_limit_is_warned_requeued_and_finishes_with_the_same_numbers() {
    if !slurm_answers() {
        return;
    }
    // SLURM warns each task 59 s before its 1-minute limit, that is 1 to 31 s after it starts
    // (slurmctld checks limits every 30 s). The cell trains for about 50 s on this machine
    // (timed first: CPUs differ fivefold between the machines seen), so the first task is warned,
    // and each requeue resumes the cell. The timing shares the CPUs with the other tests here,
    // so a cell can still train faster than timed: one that finished unwarned within 40 s is run
    // again with twice the epochs; one that trained longer and was never warned fails the test.
    let tmp = tempfile::tempdir().unwrap();
    let mut epochs = epochs_lasting(tmp.path(), 50.0);
    let (m, slurm, log) = loop {
        let (m, slurm, log) = run_with_one_minute_limit(tmp.path(), epochs);
        if log.contains("stopped by SIGUSR1") {
            break (m, slurm, log);
        }
        let trained: f64 = epoch_seconds(&only_run(&slurm)).iter().sum();
        assert!(
            trained < 40.0,
            "trained {trained:.0} s under a 1-minute limit and never warned:\n{log}"
        );
        eprintln!("{epochs} epochs trained in {trained:.0} s, before SLURM's check: twice as many");
        epochs *= 2;
    };
    assert!(log.contains("requeued task"), "{log}");
    assert!(log.contains("resuming after epoch"), "{log}");
    assert_eq!(submissions(&slurm), 1, "requeued, not submitted again");

    let local = tmp.path().join(format!("local-{epochs}"));
    assert!(
        agml(&["run", &m, "--results", local.to_str().unwrap()])
            .status
            .success()
    );
    let metrics =
        |store: &Path| std::fs::read_to_string(only_run(store).join("metrics.json")).unwrap();
    assert_eq!(metrics(&slurm), metrics(&local));
}

/// The synthetic cell of `epochs` epochs run on SLURM with a 1-minute limit, a warning 59 s
/// before it and requeues, followed until done: its matrix, its store and its tasks' logs.
fn run_with_one_minute_limit(dir: &Path, epochs: usize) -> (String, PathBuf, String) {
    let m = synthetic_matrix(dir, epochs);
    let slurm = dir.join(format!("slurm-{epochs}"));
    let slurm_s = slurm.to_str().unwrap();
    let out = agml(&[
        "run",
        &m,
        "--results",
        slurm_s,
        "--executor",
        "slurm",
        "--time",
        "1",
        "--signal-before",
        "59",
        "--max-requeues",
        "20",
    ]);
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(600);
    while status(&m, slurm_s)["done"] != 1 {
        assert!(
            Instant::now() < deadline,
            "the cell did not finish: {}",
            status(&m, slurm_s)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let log: String = std::fs::read_dir(slurm.join("slurm"))
        .unwrap()
        .flat_map(|submission| std::fs::read_dir(submission.unwrap().path()).unwrap())
        .map(|file| file.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".out"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    (m, slurm, log)
}

/// The folder of the one run a store of one cell holds.
fn only_run(results: &Path) -> PathBuf {
    let mut runs = std::fs::read_dir(results.join("runs")).unwrap();
    runs.next().unwrap().unwrap().path()
}

/// Each epoch's seconds in a run's history.csv, in epoch order.
fn epoch_seconds(run: &Path) -> Vec<f64> {
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut rows = history.lines();
    let column = rows
        .next()
        .unwrap()
        .split(',')
        .position(|name| name == "seconds")
        .expect("history.csv has a seconds column");
    rows.map(|row| row.split(',').nth(column).unwrap().parse::<f64>().unwrap())
        .collect()
}

/// Epochs of the synthetic cell that train for about `seconds` here (at least 200), at the
/// median seconds per epoch of a 30-epoch run: the median, because the first epochs can be
/// many times slower than the rest.
fn epochs_lasting(dir: &Path, seconds: f64) -> usize {
    const TIMED: usize = 30;
    let results = dir.join("timing");
    let m = synthetic_matrix(dir, TIMED);
    assert!(
        agml(&["run", &m, "--results", results.to_str().unwrap()])
            .status
            .success()
    );
    let mut per_epoch = epoch_seconds(&only_run(&results));
    per_epoch.sort_by(f64::total_cmp);
    let median = per_epoch[per_epoch.len() / 2];
    let epochs = (seconds / median).ceil() as usize;
    eprintln!("{TIMED} epochs here at a median {median:.3} s: {epochs} epochs for {seconds} s");
    epochs.max(200)
}

/// A synthetic cell of `epochs` epochs of 24 steps (0.06-0.4 s each on the machines seen).
fn synthetic_matrix(dir: &Path, epochs: usize) -> String {
    let matrix = dir.join(format!("synthetic-{epochs}.toml"));
    std::fs::write(
        &matrix,
        format!(
            "[axes]\ndataset = [\"synthetic\"]\nbackbone = [\"convnet-small\"]\n\
             head = [\"attentive\"]\nloss = [\"multi-similarity\"]\ngroups = [2]\nseed = [0]\n\
             [defaults]\nepochs = {epochs}\nbatch_size = 8\nsamples_per_class = 2\n\
             embedding_size = 16\n[datasets.synthetic]\nclasses = 8\nimages_per_class = 24\n\
             size = 28\n"
        ),
    )
    .unwrap();
    matrix.to_string_lossy().into_owned()
}

#[test]
fn a_task_killed_without_a_word_is_recorded_with_slurms_reason() {
    if !slurm_answers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = synthetic_matrix(tmp.path(), 300);
    let results = tmp.path().join("results");
    let results_s = results.to_str().unwrap();
    let out = agml(&[
        "run",
        &m,
        "--results",
        results_s,
        "--executor",
        "slurm",
        "--time",
        "5",
    ]);
    assert!(out.status.success());
    // Once the task has saved a state, SIGKILL it (as the OOM killer would).
    let deadline = Instant::now() + Duration::from_secs(300);
    let state = |results: &Path| {
        std::fs::read_dir(results.join("runs"))
            .into_iter()
            .flatten()
            .any(|run| run.unwrap().path().join("state/current.json").exists())
    };
    while !state(&results) {
        assert!(Instant::now() < deadline, "the task saved no state");
        std::thread::sleep(Duration::from_millis(200));
    }
    let submission = std::fs::read_dir(results.join("slurm"))
        .unwrap()
        .next()
        .unwrap();
    let record = std::fs::read_to_string(submission.unwrap().path().join("submission.json"));
    let record: serde_json::Value = serde_json::from_str(&record.unwrap()).unwrap();
    let task = format!("{}_0", record["job_id"].as_str().unwrap());
    let kill = Command::new("scancel")
        .args(["--signal=KILL", "--batch", &task])
        .status()
        .unwrap();
    assert!(kill.success());
    loop {
        let now = status(&m, results_s);
        if now["failed"] == 1 {
            let reason = now["cells"][0]["reason"].as_str().unwrap().to_string();
            assert!(reason.starts_with("interrupted after epoch"), "{reason}");
            assert!(
                reason.contains(&format!("SLURM task {task}: FAILED")),
                "{reason}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failure recorded: {now}");
        std::thread::sleep(Duration::from_secs(1));
    }
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
