//! `agml show` and `agml diff` on the committed reference store (no training): a run named by
//! a hash prefix shows the numbers its files hold; two runs that differ in one setting diff
//! in that setting, with each metric's delta; a bad or ambiguous prefix is bad input (exit 2).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{agml, repo};
use serde_json::Value;

fn reference() -> PathBuf {
    repo("results/reference/fashion-mnist")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn hashes(store: &Path) -> Vec<String> {
    let mut hashes: Vec<String> = fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    hashes.sort();
    hashes
}

fn stdout_json(args: &[&str]) -> Value {
    let out = agml(args);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn show_names_a_run_by_prefix_and_prints_what_its_files_hold() {
    let store = reference();
    let store_s = store.to_str().unwrap();
    let hash = &hashes(&store)[0];
    let dir = store.join("runs").join(hash);
    let shown = stdout_json(&["show", &hash[..8], "--results", store_s, "--json"]);
    assert_eq!(shown["hash"], hash.as_str());
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["metrics"], json(&dir.join("metrics.json")));
    let manifest = json(&dir.join("manifest.json"));
    assert_eq!(shown["provenance"], manifest["provenance"]);
    let cell: toml::Table = fs::read_to_string(dir.join("cell.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown["cell"], serde_json::to_value(cell).unwrap());
    for file in shown["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        assert_eq!(file["sha256"], manifest["artifacts"][name], "{name}");
        let on_disk = fs::metadata(dir.join(name)).ok().map(|m| m.len());
        assert_eq!(file["bytes"].as_u64(), on_disk, "{name}");
    }

    let out = agml(&["show", &hash[..6].to_uppercase(), "--results", store_s]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let test = &shown["metrics"]["test"];
    for metric in ["recall@1", "map@r", "nmi"] {
        let value = test[metric].as_f64().unwrap() * 100.0;
        assert!(
            text.contains(&format!("{metric} {value:.2}")),
            "{metric}:\n{text}"
        );
    }
    assert!(text.contains(&format!("run {hash}\n")), "{text}");
}

/// Two runs of the reference store whose cell.toml differ in exactly one line.
fn one_line_apart(store: &Path) -> (String, String, String, String) {
    let cells: Vec<(String, Vec<String>)> = (hashes(store).into_iter())
        .map(|hash| {
            let text = fs::read_to_string(store.join("runs").join(&hash).join("cell.toml"));
            (hash, text.unwrap().lines().map(String::from).collect())
        })
        .collect();
    for (a, lines_a) in &cells {
        for (b, lines_b) in &cells {
            if lines_a.len() != lines_b.len() {
                continue;
            }
            let differing: Vec<(&String, &String)> = (lines_a.iter().zip(lines_b))
                .filter(|(x, y)| x != y)
                .collect();
            if let [(x, y)] = differing[..] {
                return (a.clone(), b.clone(), x.clone(), y.clone());
            }
        }
    }
    panic!("no two runs one line apart in {}", store.display());
}

#[test]
fn diff_names_the_setting_that_differs_and_each_metrics_delta() {
    let store = reference();
    let store_s = store.to_str().unwrap();
    let (a, b, line_a, line_b) = one_line_apart(&store);
    let diff = stdout_json(&["diff", &a[..10], &b[..10], "--results", store_s, "--json"]);
    assert_eq!(
        (diff["a"].as_str(), diff["b"].as_str()),
        (Some(&*a), Some(&*b))
    );
    let settings = diff["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 1, "{diff}");
    let (key, value_a) = line_a.split_once(" = ").unwrap();
    let (_, value_b) = line_b.split_once(" = ").unwrap();
    // A top-level key of cell.toml (the axes are: head, groups, embedding_size, seed).
    assert_eq!(settings[0]["key"], key, "{diff}");
    assert_eq!(settings[0]["a"].to_string(), value_a);
    assert_eq!(settings[0]["b"].to_string(), value_b);

    let metrics = |hash: &str| json(&store.join("runs").join(hash).join("metrics.json"));
    let (ma, mb) = (metrics(&a), metrics(&b));
    let deltas = diff["metrics"].as_array().unwrap();
    let tests = ma["test"].as_object().unwrap().len();
    assert_eq!(deltas.iter().filter(|d| d["set"] == "test").count(), tests);
    for d in deltas {
        let (set, metric) = (d["set"].as_str().unwrap(), d["metric"].as_str().unwrap());
        let (x, y) = (ma[set][metric].as_f64(), mb[set][metric].as_f64());
        assert_eq!((d["a"].as_f64(), d["b"].as_f64()), (x, y), "{set} {metric}");
        assert_eq!(d["delta"].as_f64(), Some(y.unwrap() - x.unwrap()));
    }
    let out = agml(&["diff", &a[..8], &b[..8], "--results", store_s]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("    {key} {value_a} -> {value_b}\n")),
        "{text}"
    );
}

#[test]
fn a_prefix_that_names_no_run_or_several_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let reference = reference();
    let hash = &hashes(&reference)[0];
    // The same run under two hashes sharing 7 digits, and a failed run.
    let twins = [
        format!("{}0{}", &hash[..7], &hash[8..]),
        format!("{}1{}", &hash[..7], &hash[8..]),
    ];
    for twin in &twins {
        common::copy_tree(
            &reference.join("runs").join(hash),
            &tmp.path().join("runs").join(twin),
        );
    }
    let exit = |args: &[&str]| {
        let out = agml(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = exit(&["show", &hash[..7], "--results", results]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} names 2 runs: {}", &hash[..7], &twins[0][..12])),
        "{stderr}"
    );
    let (code, stderr) = exit(&["diff", "ffffff", &twins[1], "--results", results]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no run starts with ffffff"), "{stderr}");
    let (code, stderr) = exit(&["show", "12345", "--results", results]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("6 to 64 hex digits"), "{stderr}");

    // A failed run shows why; its files have no checksums.
    let failed = tmp.path().join("runs").join(&twins[0]);
    fs::remove_file(failed.join("manifest.json")).unwrap();
    fs::remove_file(failed.join("metrics.json")).unwrap();
    let failure = r#"{"hash": "x", "reason": "NaN loss at epoch 3", "at": "2026-12-03T00:00:00Z"}"#;
    fs::write(failed.join("failure.json"), failure).unwrap();
    let out = agml(&["show", &twins[0][..8], "--results", results]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("state      failed at 2026-12-03T00:00:00Z: NaN loss at epoch 3"),
        "{text}"
    );
    let diff = stdout_json(&["diff", &twins[0], &twins[1], "--results", results, "--json"]);
    assert_eq!(diff["settings"], serde_json::json!([]));
    assert_eq!(
        diff["metrics"],
        serde_json::json!([]),
        "runs not done have no metrics"
    );
}
