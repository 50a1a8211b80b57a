//! The photo dataset loaders on miniature trees in the published layouts
//! (tests/fixtures/datasets, written by tests/fixtures/make_dataset_fixtures.py, with a real
//! cars_annos.mat from scipy), their layout errors, and short training runs on them.

use std::path::{Path, PathBuf};

use agml::data::{
    DatasetConfig, Images, PhotoConfig, Transform, Validation, View, cars, cub, inshop, sop,
};
use agml::error::is_bad_input;

mod common;

use common::{agml, copy_tree, repo};

fn fixture(name: &str) -> PathBuf {
    repo("tests/fixtures/datasets").join(name)
}

fn small() -> PhotoConfig {
    PhotoConfig {
        val_fraction: 0.34,
        transform: Transform {
            crop: 24,
            test_crop: 20,
            resize: 22,
            ..Transform::default()
        },
        ..PhotoConfig::default()
    }
}

fn error_text(error: &anyhow::Error) -> String {
    assert!(is_bad_input(error), "not a bad-input error: {error:#}");
    format!("{error:#}")
}

#[test]
fn cub_lists_the_first_half_of_the_classes_for_training() {
    let listing = cub::list(&fixture("cub")).unwrap();
    assert_eq!(listing.train.len(), 9);
    assert_eq!(listing.test.len(), 9);
    assert!(listing.train.iter().all(|e| (1..=3).contains(&e.class)));
    assert!(listing.test.iter().all(|e| (4..=6).contains(&e.class)));
    assert!(
        listing.train[0]
            .file
            .path
            .ends_with("images/001.Bird_1/Bird_1_0000_1.jpg")
    );
    assert!(listing.gallery.is_none());
}

#[test]
fn cars_reads_the_matlab_annotations_written_by_scipy() {
    let listing = cars::list(&fixture("cars")).unwrap();
    assert_eq!(listing.train.len() + listing.test.len(), 18);
    assert!(listing.train.iter().all(|e| (1..=3).contains(&e.class)));
    assert!(listing.test.iter().all(|e| (4..=6).contains(&e.class)));
    // The fixture lists images round-robin over classes: image 2 is class 2.
    let second = listing
        .train
        .iter()
        .find(|e| e.file.path.ends_with("car_ims/000002.jpg"))
        .expect("listed");
    assert_eq!(second.class, 2);
}

#[test]
fn sop_reads_both_listing_files() {
    let listing = sop::list(&fixture("sop")).unwrap();
    assert_eq!(listing.train.len(), 8);
    assert_eq!(listing.test.len(), 8);
    assert!(listing.test.iter().all(|e| e.class > 4));
    assert!(
        listing.train[0]
            .file
            .path
            .to_string_lossy()
            .ends_with(".JPG")
    );
}

#[test]
fn inshop_splits_queries_and_gallery_with_shared_labels() {
    let listing = inshop::list(&fixture("inshop")).unwrap();
    assert_eq!(listing.train.len(), 6);
    assert_eq!(listing.test.len(), 3);
    assert_eq!(listing.gallery.as_ref().unwrap().len(), 5);
    let config = DatasetConfig::InShop(PhotoConfig {
        validation: Validation::Images,
        ..small()
    });
    let splits = config.load(&fixture("inshop"), None).unwrap();
    let gallery = splits.gallery.unwrap();
    // Query items 3 and 4 are dense 0 and 1 in both sets; item 5 is gallery-only.
    assert_eq!(splits.test.class_ids, vec![3, 4]);
    assert_eq!(gallery.class_ids, vec![3, 4, 5]);
    assert_eq!(gallery.labels, vec![0, 0, 1, 2, 2]);
}

#[test]
fn batches_decode_greyscale_and_colour_jpegs_reproducibly() {
    let splits = DatasetConfig::Cub(small())
        .load(&fixture("cub"), None)
        .unwrap();
    // Class-disjoint validation: 3 training classes -> 1 held out.
    assert_eq!(splits.train.class_count() + splits.val.class_count(), 3);
    assert!(matches!(splits.train.images, Images::Files { .. }));
    let all: Vec<usize> = (0..splits.test.len()).collect();
    let test = splits.test.batch(&all, View::Test).unwrap();
    assert_eq!(test.len(), all.len() * 3 * 20 * 20);
    assert_eq!(splits.test.batch_shape(View::Test), [3, 20, 20]);
    let view = View::Train {
        seed: 3,
        epoch: 1,
        position: 8,
    };
    let indices: Vec<usize> = (0..splits.train.len()).collect();
    let a = splits.train.batch(&indices, view).unwrap();
    assert_eq!(a.len(), indices.len() * 3 * 24 * 24);
    assert_eq!(a, splits.train.batch(&indices, view).unwrap());
    let other = View::Train {
        seed: 3,
        epoch: 2,
        position: 8,
    };
    assert_ne!(a, splits.train.batch(&indices, other).unwrap());
    // The greyscale image (CUB image 2, a training image of class 1) has equal channels.
    let grey = splits
        .train
        .batch(&[0, 1, 2], View::Test)
        .unwrap()
        .chunks(3 * 20 * 20)
        .any(|image| {
            let plane = 400;
            // ImageNet normalisation differs per channel: undo it before comparing.
            (0..plane).all(|i| {
                let r = image[i] * 0.229 + 0.485;
                let g = image[plane + i] * 0.224 + 0.456;
                (r - g).abs() < 1e-4
            })
        });
    let val_has_class_1 = splits.val.class_ids.contains(&1);
    assert!(
        grey || val_has_class_1,
        "the greyscale JPEG decodes to equal channels"
    );
}

#[test]
fn a_missing_root_names_the_folder_and_the_layout() {
    let error = cub::list(Path::new("/nonexistent/CUB_200_2011")).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("/nonexistent/CUB_200_2011"), "{text}");
    assert!(text.contains("images.txt"), "{text}");
    for load in [cars::list, sop::list, inshop::list] {
        let error = load(Path::new("/nonexistent/x")).unwrap_err().to_string();
        assert!(
            error.contains("/nonexistent/x") && error.contains("expected layout"),
            "{error}"
        );
    }
}

#[test]
fn a_missing_listed_image_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, image) in [
        ("cub", "images/002.Bird_2/Bird_2_0001_5.jpg"),
        ("cars", "car_ims/000007.jpg"),
        ("sop", "chair_final/100002_1.JPG"),
        ("inshop", "img/WOMEN/Dresses/id_00000005/02_2_front.jpg"),
    ] {
        let root = tmp.path().join(name);
        copy_tree(&fixture(name), &root);
        std::fs::remove_file(root.join(image)).unwrap();
        let error = match name {
            "cub" => cub::list(&root),
            "cars" => cars::list(&root),
            "sop" => sop::list(&root),
            _ => inshop::list(&root),
        }
        .unwrap_err()
        .to_string();
        assert!(error.contains(image), "{name}: {error}");
        assert!(
            error.contains("1 listed image(s) missing"),
            "{name}: {error}"
        );
    }
}

#[test]
fn a_wrong_layout_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cub");
    copy_tree(&fixture("cub"), &root);
    let labels = root.join("image_class_labels.txt");
    let text = std::fs::read_to_string(&labels).unwrap();
    std::fs::write(&labels, text.replacen("2 1", "2 one", 1)).unwrap();
    let error = cub::list(&root).unwrap_err().to_string();
    assert!(error.contains("image_class_labels.txt:2"), "{error}");

    let sop_root = tmp.path().join("sop");
    copy_tree(&fixture("sop"), &sop_root);
    std::fs::write(
        sop_root.join("Ebay_train.txt"),
        "id class path\n1 1 a.JPG\n",
    )
    .unwrap();
    let error = sop::list(&sop_root).unwrap_err().to_string();
    assert!(
        error.contains("Ebay_train.txt:1") && error.contains("header"),
        "{error}"
    );

    let cars_root = tmp.path().join("cars");
    copy_tree(&fixture("cars"), &cars_root);
    std::fs::write(cars_root.join("cars_annos.mat"), b"not a MATLAB file").unwrap();
    let error = cars::list(&cars_root).unwrap_err().to_string();
    assert!(error.contains("cars_annos.mat"), "{error}");

    let inshop_root = tmp.path().join("inshop");
    copy_tree(&fixture("inshop"), &inshop_root);
    let partition = inshop_root.join("list_eval_partition.txt");
    let text = std::fs::read_to_string(&partition).unwrap();
    std::fs::write(&partition, text.replacen("  train", "  training", 1)).unwrap();
    let error = inshop::list(&inshop_root).unwrap_err().to_string();
    assert!(
        error.contains("list_eval_partition.txt:3") && error.contains("training"),
        "{error}"
    );

    // Through the loader used by runs, the error is bad input (exit 2).
    let error = DatasetConfig::Cub(small()).load(&root, None).unwrap_err();
    assert!(error_text(&error).contains("image_class_labels.txt"));
}

fn matrix(dataset: &str, root: &Path, validation: &str) -> String {
    format!(
        r#"name = "photos-{dataset}"
[axes]
dataset = ["{dataset}"]
backbone = ["convnet-small"]
head = ["attentive"]
loss = ["margin"]
groups = [2]
seed = [0]

[defaults]
epochs = 2
batch_size = 4
samples_per_class = 2
embedding_size = 16

[datasets.{dataset}]
root = "{}"
validation = "{validation}"
val_fraction = 0.34
crop = 32
test_crop = 32
resize = 36
"#,
        root.display()
    )
}

#[test]
fn runs_train_on_the_miniature_trees_and_store_gallery_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    for (dataset, validation) in [("cub", "images"), ("inshop", "images"), ("sop", "images")] {
        let path = tmp.path().join(format!("{dataset}.toml"));
        std::fs::write(&path, matrix(dataset, &fixture(dataset), validation)).unwrap();
        let out = agml(&[
            "run",
            path.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{dataset} run failed");
        // The report draws colour photos: the input column of the attention figure has
        // pixels whose channels differ (a grey image would not).
        let paper = tmp.path().join(format!("paper-{dataset}"));
        let report = agml(&[
            "report",
            path.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--out",
            paper.to_str().unwrap(),
        ]);
        assert!(report.status.success(), "{dataset} report failed");
        let figure = paper.join(format!("figures/attention-{dataset}-attentive-p2.png"));
        let image = image::open(&figure)
            .unwrap_or_else(|e| panic!("{}: {e}", figure.display()))
            .to_rgb8();
        // First panel of the first row: x 78..190, y 56..168 (see the figure's layout).
        let coloured = (78..190)
            .flat_map(|x| (56..168).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let [r, g, b] = image.get_pixel(x, y).0;
                r.abs_diff(g) > 8 || g.abs_diff(b) > 8
            })
            .count();
        assert!(
            coloured > 100,
            "{dataset}: {coloured} coloured input pixels"
        );
    }
    let runs: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 3);
    let with_gallery = runs
        .iter()
        .filter(|r| r.join("gallery-embeddings.npy").is_file())
        .count();
    assert_eq!(with_gallery, 1, "only the In-Shop run has a gallery");
    for run in &runs {
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap())
                .unwrap();
        let r1 = metrics["test"]["recall@1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r1));
    }
}

#[test]
fn a_broken_tree_fails_the_run_with_exit_2_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cub");
    copy_tree(&fixture("cub"), &root);
    std::fs::remove_file(root.join("images/005.Bird_5/Bird_5_0000_13.jpg")).unwrap();
    let path = tmp.path().join("cub.toml");
    std::fs::write(&path, matrix("cub", &root, "classes")).unwrap();
    let results = tmp.path().join("results");
    let out = agml(&[
        "run",
        path.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Bird_5_0000_13.jpg"), "{stderr}");
    let stored = std::fs::read_dir(results.join("runs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "nothing is stored");
}

#[test]
fn plan_names_missing_dataset_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cars.toml");
    std::fs::write(
        &path,
        matrix("cars", &tmp.path().join("no-cars-here"), "classes"),
    )
    .unwrap();
    let out = agml(&[
        "plan",
        path.to_str().unwrap(),
        "--results",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no-cars-here"), "{text}");
}
