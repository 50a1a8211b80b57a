//! End to end on the smoke matrix: run into a temp store, report, rerun (trains nothing),
//! determinism, and bad input that writes nothing. Needs Fashion-MNIST (`make data`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

mod common;

use common::{AGML, agml, repo};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run_dirs(results: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn smoke_matrix_runs_reports_and_never_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let paper = tmp.path().join("paper");
    let smoke = repo("experiments/smoke.toml");
    let (smoke, results_s, paper_s) = (
        smoke.to_str().unwrap(),
        results.to_str().unwrap(),
        paper.to_str().unwrap(),
    );

    let plan = agml(&["plan", smoke, "--results", results_s, "--json"]);
    assert!(plan.status.success());
    let cells: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let cells = cells.as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert!(
        cells
            .iter()
            .all(|c| c["status"] == "pending" && c["hash"].as_str().unwrap().len() == 64)
    );

    let run = agml(&["run", smoke, "--results", results_s]);
    assert!(run.status.success());
    let dirs = run_dirs(&results);
    assert_eq!(dirs.len(), 2);
    for dir in &dirs {
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["hash"], dir.file_name().unwrap().to_str().unwrap());
        let artifacts = manifest["artifacts"].as_object().unwrap();
        for name in [
            "cell.toml",
            "metrics.json",
            "history.csv",
            "checkpoint-best.bpk",
        ] {
            assert_eq!(
                artifacts[name],
                sha256_hex(&dir.join(name)),
                "{name} checksum"
            );
        }
        // The backend the suite runs on (`make test BACKEND=tch` sets AGML_BACKEND).
        let backend = std::env::var("AGML_BACKEND").unwrap_or_else(|_| "flex".into());
        assert_eq!(manifest["provenance"]["backend"], backend.as_str());
        // The machine that explains another machine's different numbers: the CPU, what each
        // kernel family runs on it, the libraries' versions.
        let machine = &manifest["provenance"]["machine"];
        assert!(
            machine["cpu"].as_str().is_some_and(|c| !c.is_empty()),
            "{machine}"
        );
        assert!(
            machine["cpu_simd"].as_str().is_some_and(|c| !c.is_empty()),
            "{machine}"
        );
        assert_eq!(machine["libraries"]["burn"], "0.22.1");
        let family = if backend == "tch" { "libtorch" } else { "gemm" };
        assert!(machine["kernels"][family].is_string(), "{machine}");
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        for key in [
            "recall@1",
            "recall@2",
            "recall@4",
            "recall@8",
            "map@r",
            "r_precision",
        ] {
            let value = metrics["test"][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{key} = {value}");
        }
        // Five test classes: chance Recall@1 is about 0.2; even two tiny epochs beat it.
        assert!(metrics["test"]["recall@1"].as_f64().unwrap() > 0.3);
        // The attentive cell keeps its attention maps (one test image per class) and its
        // interpretability numbers; the no-grouping cell has neither.
        let cell = std::fs::read_to_string(dir.join("cell.toml")).unwrap();
        let interpretability = metrics["interpretability"].as_object().unwrap();
        if cell.contains("head = \"attentive\"") {
            for name in [
                "attention-maps.npy",
                "attention-images.npy",
                "attention-labels.npy",
            ] {
                assert_eq!(artifacts[name], sha256_hex(&dir.join(name)), "{name}");
            }
            for key in ["attention_overlap", "attention_entropy", "group_cosine"] {
                let value = interpretability[key].as_f64().unwrap();
                assert!((-1.0..=1.0).contains(&value), "{key} = {value}");
            }
        } else {
            assert!(!dir.join("attention-maps.npy").exists());
            assert!(interpretability.is_empty());
        }
        // The stored test embeddings reproduce the stored test metrics through `agml evaluate`.
        let evaluated = agml(&[
            "evaluate",
            "--json",
            "--embeddings",
            dir.join("test-embeddings.npy").to_str().unwrap(),
            "--labels",
            dir.join("test-labels.npy").to_str().unwrap(),
        ]);
        let evaluated: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
        for key in ["recall@1", "recall@8", "map@r", "r_precision"] {
            assert_eq!(evaluated[key], metrics["test"][key], "{key}");
        }
        let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        assert_eq!(history.lines().count(), 1 + 2, "header + 2 epochs");
    }

    let report = agml(&["report", smoke, "--results", results_s, "--out", paper_s]);
    assert!(report.status.success());
    let table = std::fs::read_to_string(paper.join("tables/smoke.md")).unwrap();
    assert!(table.contains("| none | 1 | 1 |"), "{table}");
    assert!(table.contains("| attentive | 2 | 1 |"), "{table}");
    assert!(table.contains("All 2 runs finished."));
    let tex = std::fs::read_to_string(paper.join("tables/smoke.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));
    // Rendering in detail (numbers, missing cells, figure sizes): tests/report.rs.

    // A finished matrix trains nothing and changes nothing.
    let before: Vec<_> = dirs
        .iter()
        .map(|d| {
            std::fs::metadata(d.join("manifest.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    let rerun = agml(&["run", smoke, "--results", results_s]);
    assert!(rerun.status.success());
    assert!(
        stdout(&rerun).contains("nothing to do"),
        "{}",
        stdout(&rerun)
    );
    let after: Vec<_> = dirs
        .iter()
        .map(|d| {
            std::fs::metadata(d.join("manifest.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    assert_eq!(before, after);
    // A changed artifact: verify names it (exit 1), run redoes that run only.
    let verify = agml(&["verify", "--results", results_s]);
    assert!(verify.status.success());
    std::fs::write(dirs[0].join("history.csv"), "tampered\n").unwrap();
    let verify = agml(&["verify", "--results", results_s]);
    assert_eq!(verify.status.code(), Some(1));
    let name = dirs[0].file_name().unwrap().to_str().unwrap();
    assert!(
        stdout(&verify).contains(&format!("runs/{name}/history.csv: changed")),
        "{}",
        stdout(&verify)
    );
    let redo = agml(&["run", smoke, "--results", results_s]);
    assert!(redo.status.success());
    assert!(
        stdout(&redo).contains("trained 1 cells"),
        "{}",
        stdout(&redo)
    );
    assert!(agml(&["verify", "--results", results_s]).status.success());

    let status = agml(&["status", smoke, "--results", results_s, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["done"], 2);
    assert_eq!(status["pending"], 0);
}

#[test]
fn the_same_cell_twice_gives_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let smoke = repo("experiments/smoke.toml");
    let mut metrics = Vec::new();
    for store in ["a", "b"] {
        let results = tmp.path().join(store);
        let run = agml(&[
            "run",
            smoke.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--only",
            "head=attentive",
        ]);
        assert!(run.status.success());
        let dirs = run_dirs(&results);
        assert_eq!(dirs.len(), 1);
        metrics.push(std::fs::read(dirs[0].join("metrics.json")).unwrap());
        metrics.push(
            std::fs::read(dirs[0].join("history.csv"))
                .unwrap()
                .split(|&b| b == b'\n')
                .map(|line| {
                    // Drop the seconds column (wall time differs between runs).
                    let text = String::from_utf8_lossy(line).into_owned();
                    let mut fields: Vec<&str> = text.split(',').collect();
                    if fields.len() > 4 {
                        fields.remove(4);
                    }
                    fields.join(",")
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        );
    }
    assert_eq!(
        metrics[0], metrics[2],
        "metrics.json differs between identical runs"
    );
    assert_eq!(
        metrics[1], metrics[3],
        "history differs between identical runs"
    );
}

#[test]
fn a_set_override_makes_its_own_cells_that_plan_and_run_with_it_find() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let smoke = repo("experiments/smoke.toml");
    let with = |verb: &str, extra: &[&str]| {
        let mut args = vec![verb, smoke.to_str().unwrap(), "--results"];
        args.push(results.to_str().unwrap());
        args.extend_from_slice(extra);
        agml(&args)
    };
    let one_epoch = ["--only", "head=none", "--set", "defaults.epochs=1"];
    assert!(with("run", &one_epoch).status.success());
    let dirs = run_dirs(&results);
    assert_eq!(dirs.len(), 1);
    let cell = std::fs::read_to_string(dirs[0].join("cell.toml")).unwrap();
    assert!(cell.contains("epochs = 1\n"), "{cell}");

    let plan = |extra: &[&str]| {
        let out = with("plan", &[extra, &["--json"]].concat());
        assert!(out.status.success());
        let cells: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let status = |c: &serde_json::Value| c["status"].as_str().unwrap().to_string();
        cells
            .as_array()
            .unwrap()
            .iter()
            .map(status)
            .collect::<Vec<_>>()
    };
    assert_eq!(plan(&one_epoch), ["done"]);
    assert_eq!(
        plan(&["--only", "head=none"]),
        ["pending"],
        "the file's own cell"
    );
    // The run's hash names its cell among the matrix's (as `plan` prints 12 digits of it).
    let hash = dirs[0].file_name().unwrap().to_str().unwrap().to_string();
    let by_hash = format!("hash={}", &hash[..12]);
    assert_eq!(
        plan(&["--only", &by_hash, "--set", "defaults.epochs=1"]),
        ["done"]
    );
    assert!(
        plan(&["--only", &by_hash]).is_empty(),
        "not a cell of the file as it is"
    );
    assert!(stdout(&with("run", &one_epoch)).contains("nothing to do"));
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let matrix = tmp.path().join("broken.toml");
    std::fs::write(&matrix, "[axes]\ndataset = [\"fashion-mnist\"]\nbackbone = [\"convnet-small\"]\nhead = [\"none\"]\nloss = [\"margin\"]\ngroups = [1]\nseed = [0]\nepochs = 3\n").unwrap();
    let run = agml(&[
        "run",
        matrix.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("broken.toml:8:1"), "{stderr}");
    assert!(!results.exists(), "a bad matrix wrote to the store");

    // A dataset root that does not exist: exit 2 before anything is trained.
    std::fs::write(&matrix, "[axes]\ndataset = [\"fashion-mnist\"]\nbackbone = [\"convnet-small\"]\nhead = [\"none\"]\nloss = [\"margin\"]\ngroups = [1]\nseed = [0]\n[datasets.fashion-mnist]\nroot = \"/nonexistent/fmnist\"\n").unwrap();
    let run = agml(&[
        "run",
        matrix.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/fmnist"));
    assert!(!results.exists(), "a missing dataset wrote to the store");

    let only = agml(&[
        "plan",
        repo("experiments/smoke.toml").to_str().unwrap(),
        "--only",
        "colour=red",
    ]);
    assert_eq!(only.status.code(), Some(2));

    // A bad `--set`: exit 2 naming the argument, nothing written.
    let set = agml(&[
        "run",
        repo("experiments/smoke.toml").to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--set",
        "defaults.epochs=many",
    ]);
    assert_eq!(set.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert!(
        stderr.contains("--set defaults.epochs=many: `epochs`"),
        "{stderr}"
    );
    assert!(!results.exists(), "a bad --set wrote to the store");

    // Embeddings with a NaN: exit 2 naming the file and the row, no metrics printed.
    let (e, l) = (tmp.path().join("e.npy"), tmp.path().join("l.npy"));
    let mut values: Vec<f32> = (0..100 * 8).map(|i| (i % 7) as f32).collect();
    values[37 * 8 + 5] = f32::NAN;
    std::fs::write(&e, agml::eval::npy::f32_npy(&values, &[100, 8])).unwrap();
    let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
    std::fs::write(&l, agml::eval::npy::i64_npy(&labels, &[100])).unwrap();
    let evaluate = agml(&[
        "evaluate",
        "--json",
        "--embeddings",
        e.to_str().unwrap(),
        "--labels",
        l.to_str().unwrap(),
    ]);
    assert_eq!(evaluate.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&evaluate.stderr);
    assert!(
        stderr.contains("e.npy: row 37") && evaluate.stdout.is_empty(),
        "{stderr}"
    );
}

#[test]
fn two_processes_on_one_store_train_each_cell_once() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let smoke = repo("experiments/smoke.toml");
    let spawn = || {
        Command::new(AGML)
            .args([
                "run",
                smoke.to_str().unwrap(),
                "--results",
                results.to_str().unwrap(),
            ])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success());
    let trained = |o: &Output| {
        let text = stdout(o);
        let line = text
            .lines()
            .find(|l| l.starts_with("trained "))
            .unwrap_or("trained 0")
            .to_string();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    // Whichever way the two interleave, each cell is trained by exactly one of them.
    assert_eq!(
        trained(&a) + trained(&b),
        2,
        "{}\n{}",
        stdout(&a),
        stdout(&b)
    );
    assert_eq!(run_dirs(&results).len(), 2);
    assert!(
        agml(&["verify", "--results", results.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn a_failing_cell_is_recorded_retried_and_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let matrix = tmp.path().join("diverges.toml");
    // A huge query learning rate makes the attentive cells diverge (NaN); `none` has no queries.
    std::fs::write(
        &matrix,
        "[axes]\ndataset = [\"synthetic\"]\nbackbone = [\"convnet-small\"]\nhead = [\"none\", \"attentive\"]\n\
         loss = [\"margin\"]\ngroups = [1, 2]\nseed = [0]\n[defaults]\nepochs = 3\nbatch_size = 8\n\
         samples_per_class = 2\nembedding_size = 8\nquery_lr = 3e38\nquery_weight_decay = 0\n\
         [datasets.synthetic]\nclasses = 8\nimages_per_class = 12\nsize = 16\n",
    )
    .unwrap();
    let (m, r) = (matrix.to_str().unwrap(), results.to_str().unwrap());
    let run = agml(&["run", m, "--results", r, "--retries", "1"]);
    assert_eq!(run.status.code(), Some(1));
    let out = stdout(&run);
    assert!(out.contains("trained 1 cells, 2 failed"), "{out}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("retry 1/1"));
    let status = agml(&["status", m, "--results", r, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (status["done"].as_u64(), status["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let failed: Vec<&serde_json::Value> = status["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .collect();
    for cell in failed {
        assert!(cell["reason"].as_str().unwrap().contains("NaN"), "{cell}");
        let dir = results.join("runs").join(cell["hash"].as_str().unwrap());
        assert!(dir.join("failure.json").is_file() && !dir.join("manifest.json").exists());
    }
}

/// History without its wall-time column.
fn history_without_seconds(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(4);
            fields.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The resume state's progress (`state/current.json`) of the one cell in `store`.
fn resume_progress(store: &Path, hash: &str) -> Option<serde_json::Value> {
    let current = store
        .join("runs")
        .join(hash)
        .join("state")
        .join("current.json");
    std::fs::read_to_string(current)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Starts `agml run MATRIX --results STORE --checkpoint-every 1` and waits until its state
/// holds a step within an epoch after `epochs` complete ones.
fn run_until_within(m: &str, store: &Path, hash: &str, epochs: u64) -> std::process::Child {
    let child = Command::new(AGML)
        .args(["run", m, "--results", store.to_str().unwrap()])
        .args(["--checkpoint-every", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if let Some(progress) = resume_progress(store, hash)
            && progress["epochs_done"].as_u64() >= Some(epochs)
            && progress["within"]["steps_done"].as_u64() >= Some(3)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child
}

#[test]
fn a_signal_stops_a_run_between_steps_and_it_resumes_to_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let (matrix, reference, hash) = resume_reference(tmp.path());
    let m = matrix.to_str().unwrap();
    let store = tmp.path().join("stopped");
    let store_arg = store.to_str().unwrap();

    // SIGTERM (a SLURM time limit, `kill`) within epoch 1: the state after the step it was in
    // is saved, a clear line, exit 143.
    let child = run_until_within(m, &store, &hash, 0);
    // SAFETY: signals our own child, which has not been waited for (its pid is still its own).
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(143), "{text}");
    // Epoch 1 unless this machine outran the poll.
    assert!(text.contains("stopped by SIGTERM in epoch "), "{text}");
    assert!(text.contains(" of 6 after step "), "{text}");
    assert!(resume_progress(&store, &hash).is_some(), "no saved state");
    let status = agml(&["status", m, "--results", store_arg, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["cells"][0]["status"], "interrupted");

    // SIGKILL within epoch 3, after steps of it were saved: resumes from the last one.
    let mut child = run_until_within(m, &store, &hash, 2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !store
            .join("runs")
            .join(&hash)
            .join("manifest.json")
            .exists()
    );

    let saved = resume_progress(&store, &hash).expect("a saved state");
    let resumed = agml(&["run", m, "--results", store_arg]);
    assert!(resumed.status.success());
    let log = String::from_utf8_lossy(&resumed.stderr);
    let expected = match saved["within"]["steps_done"].as_u64() {
        Some(steps) => format!(
            "resuming after epoch {} and step {steps}",
            saved["epochs_done"]
        ),
        // Killed the instant an epoch's state was saved.
        None => format!("resuming after epoch {}", saved["epochs_done"]),
    };
    assert!(log.contains(&expected), "{expected}: {log}");
    assert_same_run(
        &reference.join("runs").join(&hash),
        &store.join("runs").join(&hash),
    );
}

/// Two runs of one cell computed the same: metrics, history (but for its seconds) and the
/// selected weights' test embeddings to the bit. (The checkpoint files themselves differ:
/// burnpack stores each parameter's random id.)
fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.json")).unwrap(),
        std::fs::read_to_string(b.join("metrics.json")).unwrap()
    );
    assert_eq!(
        history_without_seconds(&a.join("history.csv")),
        history_without_seconds(&b.join("history.csv"))
    );
    assert!(
        std::fs::read(a.join("test-embeddings.npy")).unwrap()
            == std::fs::read(b.join("test-embeddings.npy")).unwrap(),
        "test embeddings differ after resuming"
    );
    assert!(
        !b.join("state").exists(),
        "the resume state outlived the finished run"
    );
}

/// RESUME_MATRIX written under `dir` and run uninterrupted into `dir/reference`: (matrix,
/// reference store, the cell's hash).
fn resume_reference(dir: &Path) -> (PathBuf, PathBuf, String) {
    let matrix = dir.join("resume.toml");
    std::fs::write(&matrix, RESUME_MATRIX).unwrap();
    let m = matrix.to_str().unwrap();
    let reference = dir.join("reference");
    assert!(
        agml(&["run", m, "--results", reference.to_str().unwrap()])
            .status
            .success()
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&agml(&["plan", m, "--json"]).stdout).unwrap();
    (
        matrix,
        reference,
        plan[0]["hash"].as_str().unwrap().to_string(),
    )
}

/// One synthetic cell of 6 epochs of 24 steps: quick to train, with steps to stop between.
const RESUME_MATRIX: &str = "[axes]\ndataset = [\"synthetic\"]\nbackbone = [\"convnet-small\"]\n\
    head = [\"attentive\"]\nloss = [\"margin\"]\ngroups = [2]\nseed = [0]\n[defaults]\nepochs = 6\n\
    batch_size = 8\nsamples_per_class = 2\nembedding_size = 16\n[datasets.synthetic]\nclasses = 8\n\
    images_per_class = 24\nsize = 28\n";

#[test]
fn a_run_killed_at_any_point_resumes_to_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let (matrix, reference, hash) = resume_reference(tmp.path());
    let m = matrix.to_str().unwrap();

    let store = tmp.path().join("killed");
    let current = store
        .join("runs")
        .join(&hash)
        .join("state")
        .join("current.json");
    // Kill before any epoch completes, then after epoch 2, then after epoch 4; then finish.
    for kill_after in [0usize, 2, 4] {
        let mut child = Command::new(AGML)
            .args(["run", m, "--results", store.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let done = std::fs::read_to_string(&current)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["epochs_done"].as_u64())
                .unwrap_or(0) as usize;
            if done >= kill_after || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        let manifest = store.join("runs").join(&hash).join("manifest.json");
        assert!(
            !manifest.exists(),
            "the run finished before the kill after {kill_after} epochs"
        );
        // status sees the dead writer: interrupted, with the epochs its state holds.
        let status = agml(&["status", m, "--results", store.to_str().unwrap(), "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let cell = &status["cells"][0];
        if cell["status"] == "interrupted" {
            assert!(cell["epochs_done"].as_u64().unwrap() as usize >= kill_after);
            assert_eq!(status["interrupted"], 1);
        } else {
            // Killed before it wrote its cell.toml: nothing begun yet.
            assert_eq!((kill_after, &cell["status"]), (0, &"pending".into()));
        }
    }
    let text = stdout(&agml(&["status", m, "--results", store.to_str().unwrap()]));
    assert!(
        text.contains("1 interrupted") && text.contains("`agml run` resumes it"),
        "{text}"
    );
    let resumed = agml(&["run", m, "--results", store.to_str().unwrap()]);
    assert!(resumed.status.success());
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming after epoch"));
    assert_same_run(
        &reference.join("runs").join(&hash),
        &store.join("runs").join(&hash),
    );
}

#[test]
fn check_invariance_writes_its_table_and_passes_for_attentive_grouping() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let run = agml(&["check", "invariance", "--out", out, "--json"]);
    assert_eq!(run.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let attentive = rows.iter().find(|r| r["head"] == "attentive").unwrap();
    assert!(attentive["permutation"].as_f64().unwrap() <= 1e-5);
    let control = rows
        .iter()
        .find(|r| r["head"] == "flatten (control)")
        .unwrap();
    assert!(control["permutation"].as_f64().unwrap() > 1e-2);
    let table = std::fs::read_to_string(tmp.path().join("tables/invariance.md")).unwrap();
    assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 1 + 7);
    assert!(tmp.path().join("tables/invariance.tex").is_file());
    let bad = agml(&["check", "invariance", "--head", "atentive", "--out", out]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn both_protocols_train_report_and_never_share_a_section() {
    let tmp = tempfile::tempdir().unwrap();
    let (results, out) = (tmp.path().join("results"), tmp.path().join("paper"));
    let matrix = tmp.path().join("protocols.toml");
    std::fs::write(
        &matrix,
        "[axes]\ndataset = [\"synthetic\"]\nbackbone = [\"convnet-small\"]\nhead = [\"none\"]\n\
         loss = [\"margin\"]\ngroups = [1]\nseed = [0]\nprotocol = [\"held-out\", \"test-selected\"]\n\
         [defaults]\nepochs = 3\neval_begin = 1\nbatch_size = 8\nsamples_per_class = 2\n\
         embedding_size = 8\nselection_metric = \"recall@1\"\n\
         [datasets.synthetic]\nclasses = 8\nimages_per_class = 12\nsize = 16\n",
    )
    .unwrap();
    let (m, r) = (matrix.to_str().unwrap(), results.to_str().unwrap());
    assert!(agml(&["run", m, "--results", r]).status.success());
    let mut protocols = Vec::new();
    for dir in run_dirs(&results) {
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        let rows: Vec<&str> = history.lines().collect();
        // Epoch 1 (up to eval_begin) trained without evaluation: its metric fields are empty.
        assert!(
            rows[1].starts_with("1,") && rows[1].ends_with(','),
            "{history}"
        );
        assert!(
            metrics["selected_epoch"].as_u64().unwrap() >= 2,
            "{metrics}"
        );
        assert_eq!(metrics["test_last_epoch"]["epoch"], 3);
        let protocol = metrics["protocol"].as_str().unwrap().to_string();
        match protocol.as_str() {
            "held-out" => {
                assert_eq!(metrics["selection_metric"], "val recall@1");
                assert!(rows[0].contains("val_recall@1"));
            }
            "test-selected" => {
                assert_eq!(metrics["selection_metric"], "test recall@1");
                assert!(!rows[0].contains("val_"), "no validation split: {history}");
                // Selected on the test set: its Recall@1 is the maximum over the epochs.
                assert_eq!(
                    metrics["test"]["recall@1"],
                    metrics["test_max_over_epochs"]["recall@1"]
                );
            }
            other => panic!("protocol {other}"),
        }
        protocols.push(protocol);
    }
    protocols.sort();
    assert_eq!(protocols, ["held-out", "test-selected"]);
    let o = out.to_str().unwrap();
    assert!(
        agml(&["report", m, "--results", r, "--out", o])
            .status
            .success()
    );
    let table = std::fs::read_to_string(out.join("tables/protocols.md")).unwrap();
    let held = table
        .find("**protocol held-out**")
        .expect("a held-out section");
    let tested = table
        .find("**protocol test-selected**")
        .expect("a test-selected section");
    assert!(held < tested, "{table}");
    assert!(
        table.contains("Protocol test-selected: all training classes train"),
        "{table}"
    );
}

#[test]
fn output_piped_into_head_ends_quietly() {
    // `agml plan ... --json | head -1`: the reader leaves after one line of 780 KB, far more
    // than a pipe holds.
    let paper = repo("experiments/paper.toml");
    let mut child = Command::new(AGML)
        .args(["plan", paper.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "[\n");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
