use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::error::is_bad_input;
use crate::model::HeadKind;

const BASE: &str = r#"
[axes]
dataset = ["fashion-mnist"]
backbone = ["convnet-small"]
head = ["none", "attentive"]
loss = ["margin"]
groups = [1, 2, 4]
seed = [0, 1]
"#;

fn parse(text: &str) -> anyhow::Result<Matrix> {
    Matrix::parse(Path::new("experiments/test.toml"), text)
}

fn error(text: &str) -> String {
    let error = parse(text).unwrap_err();
    assert!(is_bad_input(&error), "not bad input: {error:#}");
    format!("{error:#}")
}

#[test]
fn expansion_counts_with_excludes_and_inapplicable_groups() {
    let m = parse(BASE).unwrap();
    // none: groups 1 only (2 seeds); attentive: 3 group counts x 2 seeds.
    assert_eq!(m.cells.len(), 2 + 6);
    assert_eq!(m.not_applicable, 4);
    let with_rule = format!("{BASE}\n[[exclude]]\nhead = \"attentive\"\ngroups = [1, 4]\n");
    let m = parse(&with_rule).unwrap();
    assert_eq!(m.cells.len(), 2 + 2);
    assert_eq!(m.excluded, 4);
    assert!(
        m.cells
            .iter()
            .all(|c| c.values.head == HeadKind::None || c.values.groups == 2)
    );
    assert_eq!(m.name, "test");
}

#[test]
fn hash_ignores_key_order_and_spelled_out_defaults() {
    let a = parse(BASE).unwrap();
    let reordered = r#"
[axes]
seed = [0, 1]
groups = [1, 2, 4]
loss = ["margin"]
head = ["none", "attentive"]
backbone = ["convnet-small"]
dataset = ["fashion-mnist"]

[defaults]
lr = 0.001
epochs = 5
recall_k = [1, 2, 4, 8]

[losses.margin]
alpha = 0.2
beta_init = 1.2

[datasets.fashion-mnist]
val_fraction = 0.1
train_classes = [0, 1, 2, 3, 4]
"#;
    let b = parse(reordered).unwrap();
    let hashes = |m: &Matrix| {
        let mut h: Vec<String> = m.cells.iter().map(|c| c.hash.clone()).collect();
        h.sort();
        h
    };
    assert_eq!(hashes(&a), hashes(&b));
    // The same number written differently is the same number.
    let c = parse(&reordered.replace("lr = 0.001", "lr = 1e-3")).unwrap();
    assert_eq!(hashes(&b), hashes(&c));
}

#[test]
fn hash_changes_with_every_effective_value() {
    let base = parse(BASE).unwrap();
    let base_hashes: Vec<String> = base.cells.iter().map(|c| c.hash.clone()).collect();
    for change in [
        "[defaults]\nlr = 0.002",
        "[defaults]\nepochs = 6",
        "[defaults]\nlambda_div = 0.03",
        "[defaults]\nembedding_size = 128",
        "[defaults]\nreduction = 4",
        "[losses.margin]\nalpha = 0.3",
        "[datasets.fashion-mnist]\ntrain_per_class = 100",
        "[datasets.fashion-mnist]\nsplit_seed = 9",
    ] {
        let changed = parse(&format!("{BASE}\n{change}\n")).unwrap();
        for cell in &changed.cells {
            assert!(!base_hashes.contains(&cell.hash), "{change} kept a hash");
        }
    }
    // Seeds and group counts give distinct cells.
    let mut unique = base_hashes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), base_hashes.len());
}

#[test]
fn class_disjoint_validation_is_a_new_cell_and_images_is_the_old_one() {
    let base = parse(BASE).unwrap();
    let images = parse(&format!(
        "{BASE}\n[datasets.fashion-mnist]\nvalidation = \"images\"\n"
    ))
    .unwrap();
    assert_eq!(base.cells[0].hash, images.cells[0].hash);
    let classes = format!(
        "{BASE}\n[defaults]\nbatch_size = 32\nsamples_per_class = 8\n[datasets.fashion-mnist]\nvalidation = \"classes\"\n"
    );
    let classes = parse(&classes).unwrap();
    assert!(base.cells.iter().all(|c| c.hash != classes.cells[0].hash));
    // One of the five training classes goes to validation: a batch of 5 classes no longer fits.
    let message = error(&format!(
        "{BASE}\n[defaults]\nbatch_size = 80\n[datasets.fashion-mnist]\nvalidation = \"classes\"\n"
    ));
    assert!(
        message.contains("needs 5 classes, but the training split has 4"),
        "{message}"
    );
}

#[test]
fn data_root_is_not_part_of_the_hash() {
    let a = parse(BASE).unwrap();
    let b = parse(&format!(
        "{BASE}\n[datasets.fashion-mnist]\nroot = \"/elsewhere\"\n"
    ))
    .unwrap();
    assert_eq!(a.cells[0].hash, b.cells[0].hash);
    assert_eq!(b.cells[0].data_root, std::path::PathBuf::from("/elsewhere"));
}

#[test]
fn malformed_toml_names_file_line_and_column() {
    let message = error("[axes]\ndataset = [\"fashion-mnist\"\nhead = 3\n");
    assert!(message.starts_with("experiments/test.toml:"), "{message}");
    let message = error(&BASE.replace("groups = [1, 2, 4]", "groups = [1, 2, 4]\ncolour = 1"));
    assert!(message.contains("experiments/test.toml:8:1"), "{message}");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn wrong_types_unknown_names_and_empty_axes_are_errors_with_positions() {
    let message = error(&BASE.replace("seed = [0, 1]", "seed = [\"zero\"]"));
    assert!(message.contains("test.toml:8:"), "{message}");
    let message = error(&BASE.replace("\"attentive\"]", "\"atentive\"]"));
    assert!(message.contains("test.toml:5:"), "{message}");
    assert!(
        message.contains("atentive") && message.contains("attentive"),
        "{message}"
    );
    let message = error(&BASE.replace("loss = [\"margin\"]", "loss = []"));
    assert!(
        message.contains("test.toml:6:8") && message.contains("empty"),
        "{message}"
    );
    let message = error(&BASE.replace("groups = [1, 2, 4]", "groups = [1, 2, 2]"));
    assert!(
        message.contains("test.toml:7:17") && message.contains("twice"),
        "{message}"
    );
    let message = error(&BASE.replace("groups = [1, 2, 4]", "groups = [0, 2]"));
    assert!(message.contains("test.toml:7:11"), "{message}");
    let message = error(&format!("{BASE}\n[defaults]\nembedding_size = 2\n"));
    assert!(message.contains("exceed the embedding size"), "{message}");
    let message = error(&format!("{BASE}\n[datasets.imagenet]\nroot = \"x\"\n"));
    assert!(message.contains("imagenet"), "{message}");
    let message = error(&format!(
        "{BASE}\n[defaults]\nbatch_size = 30\nsamples_per_class = 4\n"
    ));
    assert!(message.contains("multiple"), "{message}");
    let message = error(&format!(
        "{BASE}\n[defaults]\nbatch_size = 64\nsamples_per_class = 4\n"
    ));
    assert!(message.contains("16 classes"), "{message}");
    let message = error(&format!(
        "{BASE}\n[defaults]\nselection_metric = \"recall@3\"\n"
    ));
    assert!(
        message.contains("test.toml:11:20") && message.contains("recall@1"),
        "{message}"
    );
    let message = error(&format!("{BASE}\n[[exclude]]\ncolour = \"red\"\n"));
    assert!(message.contains("colour"), "{message}");
    let message = error(&format!(
        "{BASE}\n[datasets.fashion-mnist]\ntest_classes = [4, 5]\n"
    ));
    assert!(message.contains("class-disjoint"), "{message}");
}

#[test]
fn only_filters_by_axis_values() {
    let m = parse(BASE).unwrap();
    let pick = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        m.select(&CellFilter::parse(&args).unwrap()).len()
    };
    assert_eq!(pick(&[]), 8);
    assert_eq!(pick(&["head=attentive"]), 6);
    assert_eq!(pick(&["head=attentive,groups=4"]), 2);
    assert_eq!(pick(&["head=attentive,groups=2,groups=4"]), 4);
    assert_eq!(pick(&["head=none", "groups=4,seed=1"]), 3);
    let unknown = CellFilter::parse(&["colour=red".to_string()]).unwrap_err();
    assert!(unknown.message.contains("not an axis") && unknown.message.contains("groups"));
    // A hash prefix names one cell; with axes, both must match.
    let hash = m.cells[3].hash.clone();
    let by_hash = format!("hash={}", hash[..8].to_uppercase());
    let picked = m.select(&CellFilter::parse(std::slice::from_ref(&by_hash)).unwrap());
    assert_eq!(picked.iter().map(|c| &c.hash).collect::<Vec<_>>(), [&hash]);
    let head = m.cells[3].values.head;
    let other = if head == HeadKind::None {
        "attentive"
    } else {
        "none"
    };
    assert_eq!(pick(&[&format!("{by_hash},head={other}")]), 0);
    assert_eq!(pick(&[&format!("{by_hash},head={head}")]), 1);
    for bad in ["hash=12345", "hash=xyzxyz"] {
        let e = CellFilter::parse(&[bad.to_string()]).unwrap_err();
        assert!(e.message.contains("6 to 64 hex digits"), "{}", e.message);
    }
}

#[test]
fn the_committed_matrices_are_valid() {
    for path in [
        "experiments/smoke.toml",
        "experiments/fashion-mnist.toml",
        "experiments/every-method.toml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let m = Matrix::load(&path).unwrap();
        assert!(!m.cells.is_empty(), "{}", path.display());
    }
}

#[test]
fn folds_expand_into_one_cell_per_fold_and_filter_by_fold() {
    let text = format!(
        "{BASE}\n[datasets.fashion-mnist]\nvalidation = \"classes\"\nfolds = 3\n[defaults]\nbatch_size = 16\nsamples_per_class = 8\n"
    );
    let m = parse(&text).unwrap();
    // 8 cells without folds, each now in 3 folds.
    assert_eq!(m.cells.len(), 8 * 3);
    let folds: HashSet<Option<usize>> = m.cells.iter().map(|c| c.values.fold).collect();
    assert_eq!(folds, HashSet::from([Some(0), Some(1), Some(2)]));
    let hashes: HashSet<&str> = m.cells.iter().map(|c| c.hash.as_str()).collect();
    assert_eq!(hashes.len(), m.cells.len(), "each fold is its own cell");
    let filter = CellFilter::parse(&["fold=1".to_string()]).unwrap();
    assert_eq!(m.select(&filter).len(), 8);

    let message = error(&text.replace("folds = 3", "folds = 1"));
    assert!(message.contains("at least 2"), "{message}");
    let message = error(&text.replace("validation = \"classes\"", "validation = \"images\""));
    assert!(
        message.contains("folds split the training classes"),
        "{message}"
    );
}

#[test]
fn command_line_names_are_the_matrix_spellings() {
    use crate::loss::LossName;
    use crate::model::BackboneKind;
    use clap::ValueEnum;
    for head in HeadKind::ALL {
        assert_eq!(HeadKind::from_str(&head.to_string(), false), Ok(head));
    }
    for backbone in BackboneKind::ALL {
        let name = backbone.to_string();
        assert_eq!(BackboneKind::from_str(&name, false), Ok(backbone));
    }
    for loss in LossName::ALL {
        assert_eq!(LossName::from_str(&loss.to_string(), false), Ok(loss));
    }
}

#[test]
fn every_setting_and_dataset_parameter_is_named_where_it_is_declared() {
    // A key a settings table does not declare is bad input naming it and the known keys.
    let message = error(&format!("{BASE}\n[defaults]\nepoch = 3\n"));
    assert!(
        message.contains("test.toml:11:9") && message.contains("epochs"),
        "{message}"
    );
    let message = error(&format!(
        "{BASE}\n[datasets.fashion-mnist.train]\nlr = \"fast\"\n"
    ));
    assert!(
        message.contains("test.toml:11:6") && message.contains("`lr`"),
        "{message}"
    );
    let message = error(&format!(
        "{BASE}\n[datasets.fashion-mnist]\ntrain_per_clas = 3\n"
    ));
    assert!(
        message.contains("test.toml:11:18") && message.contains("train_per_class"),
        "{message}"
    );
    // The dataset's train table overrides [defaults], and a new setting needs no other code.
    let m = parse(&format!(
        "{BASE}\n[defaults]\nlr = 0.5\n[datasets.fashion-mnist.train]\nlr = 0.25\n"
    ))
    .unwrap();
    assert!(m.cells.iter().all(|c| c.config.train.lr == 0.25));
    assert!(
        m.cells
            .iter()
            .all(|c| c.config.train.head_lr == Some(0.25) && c.config.train.query_lr == Some(0.25))
    );
}

#[test]
fn a_dataset_lays_its_own_loss_parameters_over_the_matrix_losses() {
    let text = format!(
        "{BASE}\n[losses.margin]\nalpha = 0.3\nbeta_lr = 5e-5\n[datasets.fashion-mnist.losses.margin]\nbeta_lr = 1e-5\n"
    );
    let m = parse(&text).unwrap();
    for cell in &m.cells {
        let crate::loss::LossConfig::Margin(margin) = &cell.config.loss else {
            panic!("a margin cell");
        };
        assert_eq!((margin.alpha, margin.beta_lr), (0.3, 1e-5));
    }
    let message = error(&text.replace("beta_lr = 1e-5", "beta_rl = 1e-5"));
    assert!(
        message.contains("test.toml:14:11") && message.contains("beta_rl"),
        "{message}"
    );
    let message = error(&text.replace("losses.margin]\nbeta_lr", "losses.margn]\nbeta_lr"));
    assert!(
        message.contains("margn") && message.contains("multi-similarity"),
        "{message}"
    );
}

#[test]
fn googlenet_crops_227_for_training_and_test_unless_the_matrix_says() {
    let text = |extra: &str| {
        format!(
            "[axes]\ndataset = [\"cub\"]\nbackbone = [\"googlenet\", \"resnet50\"]\nhead = [\"none\"]\nloss = [\"margin\"]\ngroups = [1]\nseed = [0]\n[datasets.cub]\n{extra}\n"
        )
    };
    let crops = |m: &Matrix| -> Vec<(usize, usize)> {
        m.cells
            .iter()
            .map(|c| match &c.config.dataset {
                crate::data::DatasetConfig::Cub(p) => (p.transform.crop, p.transform.test_crop),
                _ => unreachable!(),
            })
            .collect()
    };
    assert_eq!(crops(&parse(&text("")).unwrap()), [(227, 227), (224, 224)]);
    let set = parse(&text("crop = 200\ntest_crop = 192")).unwrap();
    assert_eq!(crops(&set), [(200, 192), (200, 192)]);
    let message = error(&format!(
        "{}[backbones.resnet50]\ntransform_input = true\n",
        text("")
    ));
    assert!(message.contains("transform_input"), "{message}");
}

#[test]
fn the_protocol_axis_adds_test_selected_cells_without_validation_and_keeps_held_out_hashes() {
    use crate::data::Validation;
    use crate::train::Protocol;
    let folded = format!(
        "{BASE}\n[datasets.fashion-mnist]\nvalidation = \"classes\"\nfolds = 3\n[defaults]\nbatch_size = 16\nsamples_per_class = 8\neval_begin = 2\n"
    );
    let held_out = parse(&folded).unwrap();
    let both = parse(&folded.replace(
        "seed = [0, 1]\n",
        "seed = [0, 1]\nprotocol = [\"held-out\", \"test-selected\"]\n",
    ))
    .unwrap();
    // Held-out: 8 cells x 3 folds, their hashes unchanged; test-selected: one per 8, no fold.
    assert_eq!(both.cells.len(), 8 * 3 + 8);
    let (held, tested): (Vec<_>, Vec<_>) =
        (both.cells.iter()).partition(|c| c.values.protocol == Protocol::HeldOut);
    let hashes = |cells: &[&PlannedCell]| cells.iter().map(|c| c.hash.clone()).collect::<Vec<_>>();
    assert_eq!(
        hashes(&held),
        hashes(&held_out.cells.iter().collect::<Vec<_>>())
    );
    for cell in &tested {
        assert_eq!(cell.config.dataset.validation(), Validation::None);
        assert_eq!(cell.config.protocol(), Protocol::TestSelected);
        assert_eq!(cell.values.fold, None);
        assert_eq!(cell.config.train.eval_begin, 2);
    }
    let filter = CellFilter::parse(&["protocol=test-selected".to_string()]).unwrap();
    assert_eq!(both.select(&filter).len(), 8);
    // Writing the default protocol out changes nothing.
    let spelled = parse(&BASE.replace(
        "seed = [0, 1]\n",
        "seed = [0, 1]\nprotocol = [\"held-out\"]\n",
    ))
    .unwrap();
    let base = parse(BASE).unwrap();
    assert_eq!(
        spelled.cells.iter().map(|c| &c.hash).collect::<Vec<_>>(),
        base.cells.iter().map(|c| &c.hash).collect::<Vec<_>>()
    );
}

#[test]
fn validation_none_in_a_dataset_table_points_at_the_protocol_axis() {
    let text = format!("{BASE}\n[datasets.fashion-mnist]\nvalidation = \"none\"\n");
    let message = error(&text);
    assert!(
        message.contains("test.toml:11:1") && message.contains("protocol axis"),
        "{message}"
    );
    let message = error(&format!("{BASE}\n[defaults]\nepochs = 3\neval_begin = 3\n"));
    assert!(
        message.contains("eval_begin 3 leaves no epoch"),
        "{message}"
    );
    let message = error(&BASE.replace(
        "seed = [0, 1]\n",
        "seed = [0, 1]\nprotocol = [\"held-out\", \"held-out\"]\n",
    ));
    assert!(message.contains("axis `protocol` lists"), "{message}");
}

/// `BASE` on an own dataset `products` of `kind`, whose table adds `keys`.
fn own(kind: &str, keys: &str) -> String {
    BASE.replace("\"fashion-mnist\"", "\"products\"")
        + &format!("\n[datasets.products]\nkind = \"{kind}\"\n{keys}\n")
}

#[test]
fn an_own_dataset_is_named_by_its_table_and_says_its_kind_and_root() {
    let message = error(&BASE.replace("\"fashion-mnist\"", "\"products\""));
    assert!(
        message.contains("test.toml:3:12")
            && message.contains("`products` is neither built in (fashion-mnist, cub")
            && message.contains("[datasets.products]"),
        "{message}"
    );
    let message = error(&format!("{BASE}\n[datasets.products]\nroot = \"x\"\n"));
    assert!(
        message.contains("test.toml:")
            && message.contains("not a built-in dataset")
            && message.contains("kind = \"csv\""),
        "{message}"
    );
    let message = error(&own("image-folder", ""));
    assert!(
        message.contains("test.toml:11:8") && message.contains("needs its root"),
        "{message}"
    );
    let message = error(&own("parquet", "root = \"x\""));
    assert!(
        message.contains("test.toml:11:") && message.contains("parquet"),
        "{message}"
    );
    let message = error(&own("image-folder", "root = \"x\"\ntable = \"df.csv\""));
    assert!(
        message.contains("test.toml:13:") && message.contains("no table"),
        "{message}"
    );
    let message = error(&own("csv", "root = \"/nonexistent/products\""));
    assert!(
        message.contains("/nonexistent/products/df.csv: cannot read"),
        "{message}"
    );
    let message = error(&own("csv", "root = \"x\"\ncolour = \"red\""));
    assert!(
        message.contains("unknown dataset parameter `colour`"),
        "{message}"
    );
    let message = error(&format!("{BASE}\n[datasets.\"my data\"]\nkind = \"csv\"\n"));
    assert!(message.contains("letters, digits"), "{message}");
    let synthetic = BASE.replace("\"fashion-mnist\"", "\"synthetic\"");
    let message = error(&format!("{synthetic}\n[datasets.synthetic]\nfolds = 3\n"));
    assert!(
        message.contains("test.toml:11:9") && message.contains("no folds"),
        "{message}"
    );
    let message = error(&format!(
        "{BASE}\n[[exclude]]\ndataset = \"fashion_mnist\"\n"
    ));
    assert!(
        message.contains("test.toml:") && message.contains("`fashion_mnist` is neither built in"),
        "{message}"
    );
}

#[test]
fn an_own_dataset_is_hashed_by_its_content_not_its_place_or_name() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets");
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("images")).unwrap();
    std::fs::copy(
        fixture.join("own-csv/df.csv"),
        copy.path().join("listing.csv"),
    )
    .unwrap();
    let hashes = |text: String| -> Vec<String> {
        let m = parse(&text).unwrap();
        m.cells.iter().map(|c| c.hash.clone()).collect()
    };
    let root = |p: &Path| format!("root = {:?}", p.to_str().unwrap());
    let here = hashes(own("csv", &root(&fixture.join("own-csv"))));
    let there = own(
        "csv",
        &format!("{}\ntable = \"listing.csv\"", root(copy.path())),
    );
    assert_eq!(here, hashes(there.clone()));
    assert_eq!(here, hashes(there.replace("products", "items")));
    let m = parse(&own("csv", &root(&fixture.join("own-csv")))).unwrap();
    assert_eq!(m.cells[0].data_table, Some(fixture.join("own-csv/df.csv")));
    // A SLURM task reads its cell back from the queue's JSON: the table and the name too.
    let queued = serde_json::to_string(&m.cells[0]).unwrap();
    let read: PlannedCell = serde_json::from_str(&queued).unwrap();
    assert_eq!(
        (read.data_table, read.values),
        (m.cells[0].data_table.clone(), m.cells[0].values.clone())
    );
    assert_eq!(read.hash, super::hash::config_hash(&read.config));
    // The image folder: its listing, not where it is.
    let folder = hashes(own("image-folder", &root(&fixture.join("own-folder"))));
    assert!(folder.iter().all(|h| !here.contains(h)));

    // Folds: a cell per fold of the folder's training classes; a table with validation rows
    // has its validation split already.
    let folds =
        |kind: &str, dir: &str| own(kind, &format!("{}\nfolds = 3", root(&fixture.join(dir))));
    let m = parse(&folds("image-folder", "own-folder")).unwrap();
    assert_eq!(m.cells.len(), 3 * folder.len());
    let message = error(&folds("csv", "own-csv"));
    assert!(
        message.contains("test.toml:13:9") && message.contains("own validation split"),
        "{message}"
    );
}

#[test]
fn a_photo_dataset_without_a_validation_key_holds_out_classes() {
    let cub = BASE.replace("\"fashion-mnist\"", "\"cub\"");
    let validation = |text: &str| match &parse(text).unwrap().cells[0].config.dataset {
        crate::data::DatasetConfig::Cub(photo) => photo.validation,
        other => panic!("{other:?}"),
    };
    assert_eq!(validation(&cub), crate::data::Validation::Classes);
    let images = format!("{cub}\n[datasets.cub]\nvalidation = \"images\"\n");
    assert_eq!(validation(&images), crate::data::Validation::Images);
}
