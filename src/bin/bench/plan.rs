//! The plan line: `agml plan` of a 1000-cell matrix whose cells are all done.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

/// 5 group counts x 5 losses x 40 seeds of attentive grouping on synthetic images.
const PLAN_MATRIX: &str = r#"name = "plan-bench"
[axes]
dataset = ["synthetic"]
backbone = ["convnet-small"]
head = ["attentive"]
loss = ["margin", "multi-similarity", "proxy-anchor", "contrastive", "triplet"]
groups = [1, 2, 4, 8, 16]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39]
[defaults]
batch_size = 8
samples_per_class = 2
"#;

pub(crate) fn plan_bench(dir: &Path) -> anyhow::Result<Value> {
    let name = "plan/1000-cells";
    let matrix_path = dir.join("plan-bench.toml");
    std::fs::write(&matrix_path, PLAN_MATRIX)?;
    let matrix = agml::matrix::Matrix::load(&matrix_path)?;
    anyhow::ensure!(matrix.cells.len() == 1000, "{} cells", matrix.cells.len());
    // Every cell done: a stored run with a manifest (and one small artifact).
    let results = dir.join("plan-results");
    let store = agml::store::RunStore::new(&results);
    for cell in &matrix.cells {
        let mut writer = store.begin(&cell.hash)?;
        writer.write(agml::store::RunFile::Metrics, b"{}")?;
        writer.finish(
            agml::train::SEMANTICS,
            agml::store::Provenance {
                agml_version: env!("CARGO_PKG_VERSION").into(),
                git_commit: None,
                git_dirty: None,
                backend: "flex".into(),
                device: "cpu".into(),
                host: "bench".into(),
                threads: 1,
                data_root: String::new(),
                data_table: None,
                started: agml::store::utc_now(),
                finished: agml::store::utc_now(),
                wall_seconds: 0.0,
                machine: None,
            },
        )?;
    }
    let agml = std::env::current_exe()?.with_file_name("agml");
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let output = Command::new(&agml)
            .arg("plan")
            .arg(&matrix_path)
            .arg("--results")
            .arg(&results)
            .output()
            .with_context(|| format!("running {}", agml.display()))?;
        times.push(start.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success() && text.contains("1000 done"),
            "agml plan: {text}"
        );
    }
    // The median of three.
    times.sort_by(f64::total_cmp);
    let seconds = times[1];
    println!("{name}: agml plan {seconds:.3} s (target < 1 s): ratio {seconds:.3}");
    Ok(json!({
        "name": name,
        "agml_seconds": seconds,
        "reference": "the 1 s target of `agml plan` on 1000 finished cells",
        "reference_seconds": 1.0,
        "ratio": seconds,
        "date": agml::store::utc_now(),
    }))
}
