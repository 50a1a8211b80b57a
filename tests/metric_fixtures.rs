//! `agml evaluate` against pytorch-metric-learning's AccuracyCalculator (faiss k-NN,
//! k = "max_bin_count") on committed fixtures (tests/fixtures/make_metric_fixtures.py), to
//! 1e-6; NMI against scikit-learn.

use std::path::{Path, PathBuf};
use std::process::Command;

const AGML: &str = env!("CARGO_BIN_EXE_agml");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics")
}

fn evaluate(args: &[&Path]) -> serde_json::Value {
    let flags = ["--embeddings", "--labels", "--gallery", "--gallery-labels"];
    let mut command = Command::new(AGML);
    command.arg("evaluate").arg("--json");
    for (flag, path) in flags.iter().zip(args) {
        command.arg(flag).arg(path);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn compare(case: &str, got: &serde_json::Value) {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(case).join("expected.json")).unwrap(),
    )
    .unwrap();
    for key in ["recall@1", "r_precision", "map@r"] {
        let (g, e) = (got[key].as_f64().unwrap(), expected[key].as_f64().unwrap());
        assert!(
            (g - e).abs() <= 1e-6,
            "{case} {key}: agml {g} vs pytorch-metric-learning {e}"
        );
    }
    for key in ["recall@2", "recall@4", "recall@8", "nmi", "f1"] {
        let v = got[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{case} {key} = {v}");
    }
}

#[test]
fn leave_one_out_matches_accuracy_calculator() {
    for case in ["loo-uneven", "loo-normalized"] {
        let dir = fixtures().join(case);
        let got = evaluate(&[&dir.join("embeddings.npy"), &dir.join("labels.npy")]);
        compare(case, &got);
    }
}

#[test]
fn query_gallery_matches_accuracy_calculator() {
    let dir = fixtures().join("query-gallery");
    let got = evaluate(&[
        &dir.join("queries.npy"),
        &dir.join("query_labels.npy"),
        &dir.join("gallery.npy"),
        &dir.join("gallery_labels.npy"),
    ]);
    compare("query-gallery", &got);
}

#[test]
fn nmi_matches_scikit_learn() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("nmi.json")).unwrap())
            .unwrap();
    let a: Vec<usize> = serde_json::from_value(fixture["a"].clone()).unwrap();
    let b: Vec<usize> = serde_json::from_value(fixture["b"].clone()).unwrap();
    let got = agml::eval::cluster::nmi(&a, &b);
    let expected = fixture["nmi"].as_f64().unwrap();
    assert!((got - expected).abs() <= 1e-9, "{got} vs {expected}");
}

#[test]
fn unreadable_input_is_bad_input() {
    let dir = fixtures().join("loo-uneven");
    let output = Command::new(AGML)
        .args(["evaluate", "--embeddings"])
        .arg(dir.join("labels.npy"))
        .arg("--labels")
        .arg(dir.join("labels.npy"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("labels.npy"));
}
