//! A researcher's own datasets (docs/own-data.md) end to end, on the miniature ones of
//! tests/fixtures/datasets (own-csv: an OpenMetricLearning table with its own validation split,
//! query/gallery flags and crop boxes; own-folder: class folders), written by
//! tests/fixtures/make_dataset_fixtures.py: the docs' example as written, the cell hash
//! following the content, crop boxes, and bad tables stopping a run before it trains.

use std::path::{Path, PathBuf};

use agml::data::{DatasetConfig, ImageFile, OwnConfig, OwnKind, OwnPlace, PhotoConfig, View};

mod common;

use common::{agml_in, copy_tree, repo};

fn fixture(name: &str) -> PathBuf {
    repo("tests/fixtures/datasets").join(name)
}

/// The first TOML block of docs/own-data.md: the complete example matrix.
fn docs_example() -> String {
    let docs = std::fs::read_to_string(repo("docs/own-data.md")).unwrap();
    let start = docs.find("```toml\n").expect("a TOML block") + "```toml\n".len();
    let end = start + docs[start..].find("```").unwrap();
    docs[start..end].to_string()
}

/// A working folder laid out as the docs' example expects: the matrix in
/// experiments/my-data.toml, the products table in data/products, the flowers in data/flowers.
fn example_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("own-csv"), &dir.path().join("data/products"));
    copy_tree(&fixture("own-folder"), &dir.path().join("data/flowers"));
    std::fs::create_dir(dir.path().join("experiments")).unwrap();
    std::fs::write(dir.path().join("experiments/my-data.toml"), docs_example()).unwrap();
    dir
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = agml_in(dir, args);
    assert!(out.status.success(), "agml {} failed", args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (status, dataset) of every cell of the example, from `plan --json`.
fn plan_states(dir: &Path) -> Vec<(String, String)> {
    let text = run_ok(dir, &["plan", "experiments/my-data.toml", "--json"]);
    let cells: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let field = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap().to_string();
    (cells.iter())
        .map(|c| (field(c, "status"), field(&c["cell"]["dataset"], "name")))
        .collect()
}

fn runs(results: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(results.join("runs")) {
        Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn the_docs_example_trains_evaluates_and_reports_as_written() {
    let folder = example_folder();
    let dir = folder.path();
    let states = plan_states(dir);
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(states.iter().all(|(s, _)| s == "pending"), "{states:?}");

    run_ok(dir, &["run", "experiments/my-data.toml"]);
    let runs = runs(&dir.join("results"));
    assert_eq!(runs.len(), 6);
    for run in &runs {
        let cell: toml::Value =
            toml::from_str(&std::fs::read_to_string(run.join("cell.toml")).unwrap()).unwrap();
        let kind = cell["dataset"]["name"].as_str().unwrap();
        // The table's query/gallery flags: a gallery, stored; the folder: leave-one-out.
        let gallery = run.join("gallery-embeddings.npy").is_file();
        assert_eq!(gallery, kind == "csv", "{}: {kind}", run.display());
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap())
                .unwrap();
        let r1 = metrics["test"]["recall@1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r1), "{r1}");
    }

    let table = run_ok(dir, &["report", "experiments/my-data.toml"]);
    assert!(
        table.contains("products") && table.contains("flowers"),
        "{table}"
    );
    assert!(dir.join("paper/tables/my-data.md").is_file());

    // Moved data (and the matrix's roots edited to follow): nothing to rerun.
    std::fs::rename(dir.join("data"), dir.join("moved")).unwrap();
    let matrix = dir.join("experiments/my-data.toml");
    let text = std::fs::read_to_string(&matrix).unwrap();
    std::fs::write(&matrix, text.replace("\"data/", "\"moved/")).unwrap();
    let out = run_ok(dir, &["run", "experiments/my-data.toml"]);
    assert!(out.contains("nothing to do"), "{out}");

    // An edited table (a training image listed twice) or a new image: new cells for that
    // dataset only.
    let table = dir.join("moved/products/df.csv");
    let mut rows = std::fs::read_to_string(&table).unwrap();
    let second = rows.lines().nth(1).unwrap().to_string();
    rows.push_str(&format!("{second}\n"));
    std::fs::write(&table, rows).unwrap();
    let image = dir.join("moved/flowers/train/aster/aster_0.jpg");
    std::fs::copy(&image, image.with_file_name("aster_3.jpg")).unwrap();
    let states = plan_states(dir);
    assert_eq!(states.len(), 6);
    assert!(states.iter().all(|(s, _)| s == "pending"), "{states:?}");
}

/// The example's matrix on `dataset` alone (products or flowers), with its data at `root`,
/// written into `dir`.
fn one_dataset_matrix(dir: &Path, dataset: &str, root: &Path) -> PathBuf {
    let example = docs_example();
    let text = example
        .replace(
            r#"dataset = ["products", "flowers"]"#,
            &format!("dataset = [{dataset:?}]"),
        )
        .replace(
            &format!("\"data/{dataset}\""),
            &format!("{:?}", root.to_str().unwrap()),
        );
    assert!(text.matches(root.to_str().unwrap()).count() == 1, "{text}");
    let path = dir.join(format!("{dataset}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the products matrix on a copy of own-csv broken by `break_it`: exit 2, the expected
/// words in the error, nothing stored.
fn refused(break_it: impl Fn(&Path), expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("products");
    copy_tree(&fixture("own-csv"), &root);
    break_it(&root);
    let matrix = one_dataset_matrix(dir.path(), "products", &root);
    let out = agml_in(dir.path(), &["run", matrix.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{expected:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for words in expected {
        assert!(stderr.contains(words), "{stderr}\nexpected: {words}");
    }
    assert!(
        runs(&dir.path().join("results")).is_empty(),
        "nothing is stored"
    );
}

fn edit_table(root: &Path, edit: impl Fn(Vec<String>) -> Vec<String>) {
    let table = root.join("df.csv");
    let rows = std::fs::read_to_string(&table).unwrap();
    let rows = edit(rows.lines().map(String::from).collect());
    std::fs::write(&table, rows.join("\n") + "\n").unwrap();
}

/// Replaces `from` by `to` on line `line` of the table (the header is line 1).
fn edit_line(root: &Path, line: usize, from: &str, to: &str) {
    edit_table(root, |mut rows| {
        rows[line - 1] = rows[line - 1].replacen(from, to, 1);
        rows
    });
}

#[test]
fn bad_tables_stop_the_run_with_exit_2_naming_file_and_line() {
    refused(
        |root| edit_line(root, 1, ",split,", ",set,"),
        &["df.csv:1: missing column(s) split; the header has label, path, set, is_query"],
    );
    refused(
        |root| edit_line(root, 5, ",train,", ",dev,"),
        &["df.csv:5: split `dev` is not train, validation or test"],
    );
    refused(
        |root| edit_line(root, 2, ",8,35,10,38", ",500,600,500,600"),
        &["df.csv:2: crop box x 500..600, y 500..600 lies outside the"],
    );
    refused(
        |root| {
            std::fs::remove_file(root.join("images/mug-1/1.jpg")).unwrap();
            std::fs::remove_file(root.join("images/vase-9/2.jpg")).unwrap();
        },
        &[
            "df.csv: 2 of 33 listed images are not files under",
            "line 3: images/mug-1/1.jpg; line 27: images/vase-9/2.jpg",
            "nothing was trained",
        ],
    );
    refused(
        |root| edit_line(root, 33, "vase-11", "mug-2"),
        &["df.csv:33: label `mug-2` is in train and test (also line 5)"],
    );
    refused(
        |root| {
            edit_table(root, |rows| {
                (rows.into_iter())
                    .filter(|r| !(r.starts_with("vase-9,") && r.contains(",0,1,")))
                    .collect()
            })
        },
        &["df.csv:25: query of label `vase-9` has no gallery image of its label"],
    );
}

#[test]
fn an_image_folder_sharing_a_class_between_train_and_test_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("flowers");
    copy_tree(&fixture("own-folder"), &root);
    copy_tree(&root.join("test/iris"), &root.join("train/iris"));
    let matrix = one_dataset_matrix(dir.path(), "flowers", &root);
    let out = agml_in(dir.path(), &["plan", matrix.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 class folder(s) in both train/ and test/, e.g. iris"),
        "{stderr}"
    );
}

/// Mean of each channel of a `[3, side, side]` ImageNet-normalised image, in 0..255 levels.
fn mean_colour(pixels: &[f32]) -> [f32; 3] {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let plane = pixels.len() / 3;
    [0, 1, 2].map(|c| {
        let sum: f32 = pixels[c * plane..(c + 1) * plane].iter().sum();
        (sum / plane as f32 * STD[c] + MEAN[c]) * 255.0
    })
}

/// The configuration a matrix plans for the table `root/df.csv` (photo defaults).
fn planned(root: &Path) -> OwnConfig {
    let table = root.join("df.csv");
    let place = OwnPlace {
        kind: OwnKind::Csv,
        root,
        table: Some(&table),
    };
    let photo = PhotoConfig::default();
    OwnConfig {
        content_sha256: place.content(photo.validation).unwrap().sha256,
        photo,
    }
}

#[test]
fn crop_boxes_keep_the_box_before_the_transforms() {
    let root = fixture("own-csv");
    let table = root.join("df.csv");
    let config = planned(&root);
    let splits = DatasetConfig::Csv(config.clone())
        .load(&root, Some(&table))
        .unwrap();
    // The first training image, mug-1's: its class colour (37, 91, 157) fills the box only,
    // on the complementary colour.
    let cropped = mean_colour(&splits.train.batch(&[0], View::Test).unwrap());
    let whole = ImageFile::whole(root.join("images/mug-1/0.jpg"));
    let whole = mean_colour(&config.photo.transform.load(&whole, View::Test).unwrap());
    for (c, expected) in [37.0, 91.0, 157.0].into_iter().enumerate() {
        assert!(
            (cropped[c] - expected).abs() < 8.0,
            "cropped {cropped:?}, whole {whole:?}"
        );
    }
    assert!((whole[0] - 37.0).abs() > 30.0, "whole {whole:?}");

    // The table's own validation rows are the validation split; the gallery has a
    // distractor class no query has.
    assert_eq!(splits.val.len(), 4);
    assert_eq!(splits.test.len(), 6);
    let gallery = splits.gallery.as_ref().unwrap();
    assert_eq!((gallery.len(), gallery.class_count()), (8, 4));
}

#[test]
fn a_run_refuses_data_changed_since_its_cell_was_planned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("products");
    copy_tree(&fixture("own-csv"), &root);
    let table = root.join("df.csv");
    let planned = DatasetConfig::Csv(planned(&root));
    assert!(planned.load(&root, Some(&table)).is_ok());
    edit_table(&root, |mut rows| {
        rows.pop();
        rows
    });
    let error = planned.load(&root, Some(&table)).unwrap_err();
    assert!(agml::error::is_bad_input(&error));
    let message = format!("{error:#}");
    assert!(
        message.contains("df.csv: the table changed since the matrix was read"),
        "{message}"
    );
}
