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

/// k-means on a many-class set (300 classes of 2-12, the retrieval sets' shape) against faiss
/// (`faiss.Kmeans(d, k, niter=20)`, as AccuracyCalculator runs it): the objective within 1 % of
/// faiss's and NMI within 0.01 of AccuracyCalculator's; the same clustering for the same seed.
#[test]
fn kmeans_matches_faiss_on_many_classes() {
    let dir = fixtures().join("kmeans-many-classes");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let (data, dim) = agml::eval::evaluate::read_embeddings(&dir.join("embeddings.npy")).unwrap();
    let labels: Vec<usize> = agml::eval::evaluate::read_labels(&dir.join("labels.npy"))
        .unwrap()
        .into_iter()
        .map(|l| l as usize)
        .collect();
    let k = expected["k"].as_u64().unwrap() as usize;
    let clustering = agml::eval::kmeans(&data, dim, k, agml::eval::evaluate::CLUSTER_SEED);
    let faiss = expected["faiss_inertia"].as_f64().unwrap();
    let nmi = agml::eval::cluster::nmi(&clustering.assignment, &labels);
    let reference_nmi = expected["nmi"].as_f64().unwrap();
    eprintln!(
        "k-means: inertia {:.4} (faiss {faiss:.4}, {:+.2} %), NMI {nmi:.4} (AccuracyCalculator \
         {reference_nmi:.4}), {} iterations",
        clustering.inertia,
        100.0 * (clustering.inertia / faiss - 1.0),
        clustering.iterations
    );
    assert!(
        clustering.inertia <= 1.01 * faiss,
        "{} vs {faiss}",
        clustering.inertia
    );
    assert!(
        (nmi - reference_nmi).abs() <= 0.01,
        "{nmi} vs {reference_nmi}"
    );
    assert_eq!(
        agml::eval::kmeans(&data, dim, k, agml::eval::evaluate::CLUSTER_SEED),
        clustering
    );
}

/// `--metrics` computes and prints only what it names (AccuracyCalculator's `include`);
/// `--timings` says on stderr where the seconds went; an unknown name is bad input.
#[test]
fn a_subset_of_metrics_and_their_timings() {
    let dir = fixtures().join("loo-uneven");
    let run = |metrics: &str| {
        Command::new(AGML)
            .args([
                "evaluate",
                "--json",
                "--timings",
                "--metrics",
                metrics,
                "--embeddings",
            ])
            .arg(dir.join("embeddings.npy"))
            .arg("--labels")
            .arg(dir.join("labels.npy"))
            .output()
            .unwrap()
    };
    let output = run("map@r,nmi");
    assert!(output.status.success());
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["map@r", "nmi"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("retrieval") && stderr.contains("clustering"),
        "{stderr}"
    );
    // Retrieval only: no k-means at all.
    let output = run("recall@k");
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["recall@1", "recall@2", "recall@4", "recall@8"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("clustering"));
    let output = run("nmi,purity");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("purity"));
}
