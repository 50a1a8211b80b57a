//! The smoke matrix against its committed golden (tests/fixtures/golden/smoke.json): where this
//! build's kernels are ones the golden lists (a flex build without the `simd` feature on any
//! x86-64 machine with AVX2 + FMA: burn-flex's sums in index order, gemm's AVX2 + FMA kernels,
//! agml's own), every number of every cell's metrics.json is identical, whatever the CPU's
//! model, SIMD width or caches; elsewhere each test metric is within the golden's tolerance
//! (per metric), and the test says loudly that it could only check that. flex only: tch's
//! numbers are checked against flex's by tests/backend_parity.rs.

mod common;

use common::{agml, repo};
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn smoke_metrics_match_the_committed_golden() {
    let backend = std::env::var("AGML_BACKEND").unwrap_or_else(|_| "flex".into());
    if backend != "flex" {
        eprintln!("SKIPPED: the golden holds flex's numbers; this suite runs on {backend}");
        return;
    }
    let golden = json(&repo("tests/fixtures/golden/smoke.json"));
    assert_eq!(
        golden["semantics"].as_u64(),
        Some(u64::from(agml::train::SEMANTICS)),
        "the golden is of another semantics version: regenerate it (see its `about`)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("results");
    let smoke = repo("experiments/smoke.toml");
    let run = agml(&[
        "run",
        smoke.to_str().unwrap(),
        "--results",
        store.to_str().unwrap(),
    ]);
    assert!(run.status.success());
    let machines = golden["machines"].as_array().unwrap();
    let tolerances = &golden["tolerance"];
    let tolerance = |metric: &str| {
        tolerances[metric]
            .as_f64()
            .or(tolerances["default"].as_f64())
            .unwrap()
    };
    let mut runs = 0;
    for entry in std::fs::read_dir(store.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
        let metrics = json(&dir.join("metrics.json"));
        let machine = &json(&dir.join("manifest.json"))["provenance"]["machine"];
        let same = |m: &&Value| m["kernels"] == machine["kernels"];
        if let Some(known) = machines.iter().find(same) {
            let checked = format!(
                "the golden of these kernels ({}) on {} ({}, {})",
                known["note"], machine["cpu"], machine["cpu_simd"], machine["caches"]
            );
            assert_eq!(
                metrics, known["metrics"][&hash],
                "{hash}: metrics differ from {checked}"
            );
            eprintln!("{hash}: byte-identical to {checked}");
        } else {
            eprintln!(
                "NOT BYTE-CHECKED: no golden for this build's kernels ({machine}); each test \
                 metric of {hash} checked within the golden's tolerance ({tolerances}) of the \
                 first golden's"
            );
            let expected = &machines[0]["metrics"][&hash]["test"];
            for (name, value) in metrics["test"].as_object().unwrap() {
                let (got, want) = (value.as_f64().unwrap(), expected[name].as_f64().unwrap());
                let tolerance = tolerance(name);
                assert!(
                    (got - want).abs() <= tolerance,
                    "{hash} {name}: {got} against the golden's {want} (tolerance {tolerance})"
                );
            }
        }
        runs += 1;
    }
    assert_eq!(runs, 2, "the smoke matrix has two cells");
}
