//! Rendering from stored runs: the tables carry the runs' own numbers, unfinished cells are
//! marked, the Parquet index has a row per run x metric, and every figure is written as PNG
//! and SVG at its expected size, byte-identical when regenerated.

mod common;

use std::path::{Path, PathBuf};

use agml::eval::npy::read_npy;
use common::{agml, repo};

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image = image::load_from_memory(&bytes).unwrap();
    (image.width(), image.height())
}

fn figure_sizes(paper: &Path) -> Vec<(String, (u32, u32))> {
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(paper.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    pngs.iter()
        .map(|p| {
            let svg = p.with_extension("svg");
            let text = std::fs::read_to_string(&svg).unwrap();
            assert!(text.starts_with("<svg"), "{}", svg.display());
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            (stem, png_size(p))
        })
        .collect()
}

#[test]
fn report_renders_tables_index_and_figures_from_stored_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let paper = tmp.path().join("paper");
    let (results_s, paper_s) = (results.to_str().unwrap(), paper.to_str().unwrap());
    let smoke = repo("experiments/smoke.toml").to_str().unwrap().to_string();

    // Half the matrix: the table still renders, with the missing cell marked and counted.
    let run = agml(&["run", &smoke, "--results", results_s, "--only", "head=none"]);
    assert!(run.status.success());
    assert!(
        agml(&["report", &smoke, "--results", results_s, "--out", paper_s])
            .status
            .success()
    );
    let table = std::fs::read_to_string(paper.join("tables/smoke.md")).unwrap();
    assert!(
        table.contains("| attentive | 2 | 0/1 | missing |"),
        "{table}"
    );
    assert!(
        table.contains("1 of 2 runs finished; 1 missing."),
        "{table}"
    );
    let tex = std::fs::read_to_string(paper.join("tables/smoke.tex")).unwrap();
    assert!(tex.contains("attentive & 2 & 0/1 & --"), "{tex}");

    // The whole matrix.
    assert!(
        agml(&["run", &smoke, "--results", results_s])
            .status
            .success()
    );
    let report = agml(&["report", &smoke, "--results", results_s, "--out", paper_s]);
    assert!(report.status.success());
    let table = std::fs::read_to_string(paper.join("tables/smoke.md")).unwrap();
    assert!(table.contains("All 2 runs finished."), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 3, "header and two methods: {table}");

    // Each row carries its run's own numbers (one seed: the value itself, in percent).
    let mut index_rows = 0;
    let mut attention_images = 0;
    for entry in std::fs::read_dir(results.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        let cell = std::fs::read_to_string(dir.join("cell.toml")).unwrap();
        let head = if cell.contains("head = \"attentive\"") {
            "| attentive | 2 | 1 |"
        } else {
            "| none | 1 | 1 |"
        };
        let row = rows.iter().find(|r| r.starts_with(head)).unwrap();
        let recall1 = format!(
            "{:.1}",
            metrics["test"]["recall@1"].as_f64().unwrap() * 100.0
        );
        let map_r = format!("{:.1}", metrics["test"]["map@r"].as_f64().unwrap() * 100.0);
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells[3].contains(&recall1), "R@1 {recall1} in {row}");
        assert!(cells[7].contains(&map_r), "MAP@R {map_r} in {row}");
        for part in ["test", "val", "interpretability"] {
            index_rows += metrics[part].as_object().map_or(0, |o| o.len());
        }
        if dir.join("attention-labels.npy").exists() {
            attention_images = read_npy(&dir.join("attention-labels.npy")).unwrap().shape[0];
        }
    }
    let index = agml::report::index::read_index(&paper.join("tables/smoke-runs.parquet")).unwrap();
    assert_eq!(index.height(), index_rows);
    assert!(attention_images > 0);

    // Shapes whose axis does not vary are not written (one loss, one backbone, P fixed).
    for absent in ["smoke-losses.md", "smoke-backbones.md", "smoke-groups.md"] {
        assert!(!paper.join("tables").join(absent).exists(), "{absent}");
    }
    let interpretability =
        std::fs::read_to_string(paper.join("tables/smoke-interpretability.md")).unwrap();
    assert!(
        interpretability.contains("| attentive | 2 | 1 |"),
        "{interpretability}"
    );

    // Figures: PNG and SVG each, at the sizes their layouts give.
    let mut sizes = figure_sizes(&paper);
    // Input + 2 groups of 112 px panels, a row per stored test image; at least as wide as the
    // panels (the title may widen it).
    let (stem, (width, height)) = sizes.remove(0);
    assert_eq!(stem, "attention-fashion-mnist-attentive-p2");
    assert!(width >= 78 + 3 * 118 + 6, "{width}");
    assert_eq!(height, 56 + attention_images as u32 * 118 + 28);
    let expected = vec![
        // Two PCA panels (no grouping and the best method).
        ("embeddings-fashion-mnist".to_string(), (880, 504)),
        ("recall-at-k".to_string(), (520, 438)),
        // Loss and validation metric panels.
        ("training-fashion-mnist".to_string(), (1040, 438)),
    ];
    assert_eq!(sizes, expected);

    // Regenerating from the store gives the same bytes.
    let before: Vec<Vec<u8>> = [
        "figures/recall-at-k.png",
        "figures/recall-at-k.svg",
        "tables/smoke.tex",
    ]
    .iter()
    .map(|f| std::fs::read(paper.join(f)).unwrap())
    .collect();
    assert!(
        agml(&["report", &smoke, "--results", results_s, "--out", paper_s])
            .status
            .success()
    );
    for (file, bytes) in [
        "figures/recall-at-k.png",
        "figures/recall-at-k.svg",
        "tables/smoke.tex",
    ]
    .iter()
    .zip(before)
    {
        assert_eq!(std::fs::read(paper.join(file)).unwrap(), bytes, "{file}");
    }

    // A non-finite value in stored embeddings is bad input naming the file and its row, as in
    // `agml evaluate`: the projection figure would be meaningless.
    let mut corrupted = 0;
    for entry in std::fs::read_dir(results.join("runs")).unwrap() {
        let file = entry.unwrap().path().join("test-embeddings.npy");
        let array = read_npy(&file).unwrap();
        let agml::eval::npy::NpyValues::Float(mut values) = array.values else {
            panic!("{}: not float", file.display());
        };
        values[3 * array.shape[1] + 1] = f32::NAN;
        std::fs::write(&file, agml::eval::npy::f32_npy(&values, &array.shape)).unwrap();
        corrupted += 1;
    }
    assert!(corrupted > 0);
    let report = agml(&["report", &smoke, "--results", results_s, "--out", paper_s]);
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert_eq!(report.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("test-embeddings.npy: row 3 has a non-finite value (NaN at column 1)"),
        "{stderr}"
    );
}
