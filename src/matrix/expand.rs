//! Validation and expansion of a parsed matrix into effective run configurations.

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::schema::{Axis, ExcludeRule, MatrixFile, Settings};
use super::{AxisValues, PlannedCell};
use crate::data::{
    ClassFold, DatasetConfig, DatasetName, FashionMnistConfig, Normalization, PhotoConfig,
    Transform, Validation,
};
use crate::error::BadInput;
use crate::model::{BackboneConfig, BackboneKind};
use crate::train::config::{RunConfig, TrainConfig, defaults};

/// Where an error points: the matrix file and its text.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    fn error_at<T>(&self, spanned: &Spanned<T>, message: impl std::fmt::Display) -> BadInput {
        BadInput::at(self.path, self.text, spanned.span().start, message)
    }
}

/// The cells of a matrix and how many combinations were left out.
pub(super) struct Expansion {
    pub cells: Vec<PlannedCell>,
    pub excluded: usize,
    pub not_applicable: usize,
}

/// Checks the axes and expands their product, minus excludes and inapplicable combinations.
pub(super) fn expand(file: &MatrixFile, src: &Source) -> Result<Expansion, BadInput> {
    let axes = file.axes.get_ref();
    check_axis(src, "dataset", &axes.dataset)?;
    check_axis(src, "backbone", &axes.backbone)?;
    check_axis(src, "head", &axes.head)?;
    check_axis(src, "loss", &axes.loss)?;
    check_axis(src, "groups", &axes.groups)?;
    check_axis(src, "seed", &axes.seed)?;
    if let Some(sizes) = &axes.embedding_size {
        check_axis(src, "embedding_size", sizes)?;
    }
    for groups in axes.groups.get_ref() {
        if *groups.get_ref() == 0 {
            return Err(src.error_at(groups, "a group count must be at least 1"));
        }
    }

    let mut cells = Vec::new();
    let mut seen = HashSet::new();
    let (mut excluded, mut not_applicable) = (0, 0);
    for dataset in axes.dataset.get_ref() {
        let resolved = resolve_dataset(file, src, *dataset.get_ref())?;
        let data_root = resolved.root;
        let settings = file.defaults.overlaid(&resolved.settings);
        for backbone in axes.backbone.get_ref() {
            let (backbone_config, weights) = resolve_backbone(file, src, *backbone.get_ref())?;
            for (base_dataset, fold) in &resolved.variants {
                let dataset_config = for_backbone(base_dataset, backbone_config.name);
                for head in axes.head.get_ref() {
                    for loss in axes.loss.get_ref() {
                        let loss_config = file.losses.resolve(*loss.get_ref());
                        let sizes: Vec<Spanned<usize>> = match &axes.embedding_size {
                            Some(axis) => axis.get_ref().clone(),
                            None => {
                                vec![settings.embedding_size.clone().unwrap_or_else(|| {
                                    Spanned::new(0..0, defaults::EMBEDDING_SIZE)
                                })]
                            }
                        };
                        for size in &sizes {
                            for groups in axes.groups.get_ref() {
                                for seed in axes.seed.get_ref() {
                                    let values = AxisValues {
                                        dataset: *dataset.get_ref(),
                                        backbone: *backbone.get_ref(),
                                        head: *head.get_ref(),
                                        loss: *loss.get_ref(),
                                        embedding_size: *size.get_ref(),
                                        groups: *groups.get_ref(),
                                        seed: *seed.get_ref(),
                                        fold: *fold,
                                    };
                                    if file
                                        .exclude
                                        .iter()
                                        .any(|rule| rule_matches(rule.get_ref(), &values))
                                    {
                                        excluded += 1;
                                        continue;
                                    }
                                    // A head without groups has exactly one: other counts are no cells.
                                    if !values.head.has_groups() && values.groups != 1 {
                                        not_applicable += 1;
                                        continue;
                                    }
                                    if values.groups > values.embedding_size {
                                        return Err(src.error_at(
                                            groups,
                                            format!(
                                                "{} groups exceed the embedding size {}",
                                                values.groups, values.embedding_size
                                            ),
                                        ));
                                    }
                                    let config = RunConfig {
                                        dataset: dataset_config.clone(),
                                        backbone: backbone_config.clone(),
                                        head: values.head,
                                        loss: loss_config.clone(),
                                        groups: values.groups,
                                        embedding_size: values.embedding_size,
                                        reduction: resolve_reduction(&settings, src)?,
                                        seed: values.seed,
                                        train: resolve_train(&settings, &dataset_config, src)?,
                                    };
                                    let hash = super::hash::config_hash(&config);
                                    if seen.insert(hash.clone()) {
                                        cells.push(PlannedCell {
                                            hash,
                                            config,
                                            values,
                                            data_root: data_root.clone(),
                                            weights: weights.clone(),
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Expansion {
        cells,
        excluded,
        not_applicable,
    })
}

fn check_axis<T: PartialEq + Debug>(
    src: &Source,
    name: &str,
    axis: &Axis<T>,
) -> Result<(), BadInput> {
    let values = axis.get_ref();
    if values.is_empty() {
        return Err(src.error_at(
            axis,
            format!("axis `{name}` is empty: give at least one value"),
        ));
    }
    for (i, value) in values.iter().enumerate() {
        if values[..i]
            .iter()
            .any(|earlier| earlier.get_ref() == value.get_ref())
        {
            return Err(src.error_at(
                value,
                format!("axis `{name}` lists {:?} twice", value.get_ref()),
            ));
        }
    }
    Ok(())
}

fn rule_matches(rule: &ExcludeRule, v: &AxisValues) -> bool {
    fn ok<T: PartialEq>(key: &Option<super::schema::OneOrMany<T>>, value: &T) -> bool {
        key.as_ref().is_none_or(|allowed| allowed.contains(value))
    }
    ok(&rule.dataset, &v.dataset)
        && ok(&rule.backbone, &v.backbone)
        && ok(&rule.head, &v.head)
        && ok(&rule.loss, &v.loss)
        && ok(&rule.embedding_size, &v.embedding_size)
        && ok(&rule.groups, &v.groups)
        && ok(&rule.seed, &v.seed)
}

/// A dataset axis value resolved: its configuration (one per fold with k-fold validation),
/// where it lives and its settings.
struct ResolvedDataset {
    variants: Vec<(DatasetConfig, Option<usize>)>,
    root: PathBuf,
    settings: Settings,
}

/// `config` for one fold each when `folds` is set, else `config` alone.
fn fold_variants(
    config: DatasetConfig,
    folds: Option<&Spanned<usize>>,
    validation: Validation,
    src: &Source,
) -> Result<Vec<(DatasetConfig, Option<usize>)>, BadInput> {
    let Some(folds) = folds else {
        return Ok(vec![(config, None)]);
    };
    let k = *folds.get_ref();
    if k < 2 {
        return Err(src.error_at(folds, "folds must be at least 2"));
    }
    if validation != Validation::Classes {
        return Err(src.error_at(
            folds,
            "folds split the training classes: set validation = \"classes\"",
        ));
    }
    Ok((0..k)
        .map(|fold| {
            let mut variant = config.clone();
            variant.set_fold(ClassFold { folds: k, fold });
            (variant, Some(fold))
        })
        .collect())
}

/// The dataset configuration as `backbone` sees it: its input normalisation and, unless the
/// matrix set one, its crop side (227 for GoogLeNet, as in the authors' code).
fn for_backbone(config: &DatasetConfig, backbone: BackboneKind) -> DatasetConfig {
    let mut config = config.clone();
    if let Some(photo) = config.photo_mut() {
        photo.transform.normalization = Normalization::of(backbone);
        if photo.transform.crop == 0 {
            photo.transform.crop = match backbone {
                BackboneKind::Googlenet => 227,
                _ => 224,
            };
        }
    }
    config
}

fn resolve_dataset(
    file: &MatrixFile,
    src: &Source,
    name: DatasetName,
) -> Result<ResolvedDataset, BadInput> {
    match name {
        DatasetName::FashionMnist => {
            let table = file.datasets.fashion_mnist.as_ref();
            let default = FashionMnistConfig::default();
            let classes = |field: Option<&Spanned<Vec<u8>>>,
                           fallback: Vec<u8>|
             -> Result<Vec<u8>, BadInput> {
                let Some(field) = field else {
                    return Ok(fallback);
                };
                let list = field.get_ref();
                if list.is_empty() || list.iter().any(|&c| c > 9) {
                    return Err(src.error_at(
                        field,
                        "Fashion-MNIST classes are 0..=9 and a list is not empty",
                    ));
                }
                Ok(list.clone())
            };
            let train_classes = classes(
                table.and_then(|t| t.train_classes.as_ref()),
                default.train_classes,
            )?;
            let test_classes = classes(
                table.and_then(|t| t.test_classes.as_ref()),
                default.test_classes,
            )?;
            if let Some(shared) = train_classes.iter().find(|c| test_classes.contains(c)) {
                let field =
                    table.and_then(|t| t.test_classes.as_ref().or(t.train_classes.as_ref()));
                let message = format!(
                    "class {shared} is both a training and a test class: the split must be class-disjoint"
                );
                return Err(match field {
                    Some(field) => src.error_at(field, message),
                    None => BadInput::new(format!("{}: {message}", src.path.display())),
                });
            }
            let val_fraction = resolve_val_fraction(
                table.and_then(|t| t.val_fraction.as_ref()),
                default.val_fraction,
                src,
            )?;
            let config = FashionMnistConfig {
                train_classes,
                test_classes,
                train_per_class: table
                    .and_then(|t| t.train_per_class)
                    .unwrap_or(default.train_per_class),
                test_per_class: table
                    .and_then(|t| t.test_per_class)
                    .unwrap_or(default.test_per_class),
                val_fraction,
                split_seed: table
                    .and_then(|t| t.split_seed)
                    .unwrap_or(default.split_seed),
                validation: table
                    .and_then(|t| t.validation)
                    .unwrap_or(default.validation),
                fold: None,
            };
            let root = resolve_root(table.and_then(|t| t.root.as_ref()), name);
            let settings = table.map(|t| t.train.clone()).unwrap_or_default();
            let validation = config.validation;
            let variants = fold_variants(
                DatasetConfig::FashionMnist(config),
                table.and_then(|t| t.folds.as_ref()),
                validation,
                src,
            )?;
            Ok(ResolvedDataset {
                variants,
                root,
                settings,
            })
        }
        DatasetName::Synthetic => {
            let config = file.datasets.synthetic.clone().unwrap_or_default();
            if config.classes < 4
                || config.images_per_class < 2
                || config.size < 8
                || config.channels == 0
            {
                return Err(BadInput::new(format!(
                    "{}: [datasets.synthetic] needs classes >= 4, images_per_class >= 2, size >= 8, channels >= 1",
                    src.path.display()
                )));
            }
            Ok(ResolvedDataset {
                variants: vec![(DatasetConfig::Synthetic(config), None)],
                root: PathBuf::new(),
                settings: Settings::default(),
            })
        }
        DatasetName::Cub | DatasetName::Cars | DatasetName::Sop | DatasetName::InShop => {
            resolve_photo(file, src, name)
        }
    }
}

/// The dataset's folder: the table's `root`, else the dataset's default.
fn resolve_root(root: Option<&Spanned<String>>, name: DatasetName) -> PathBuf {
    root.map_or_else(
        || PathBuf::from(name.default_root()),
        |r| PathBuf::from(r.get_ref()),
    )
}

fn resolve_val_fraction(
    field: Option<&Spanned<f64>>,
    default: f64,
    src: &Source,
) -> Result<f64, BadInput> {
    match field {
        Some(v) if !(0.0..1.0).contains(v.get_ref()) || *v.get_ref() <= 0.0 => {
            Err(src.error_at(v, "val_fraction must be in (0, 1)"))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    }
}

fn resolve_photo(
    file: &MatrixFile,
    src: &Source,
    name: DatasetName,
) -> Result<ResolvedDataset, BadInput> {
    let table = file.datasets.photo(name);
    let default = PhotoConfig::default();
    let side = |field: Option<&Spanned<usize>>, fallback: usize, what: &str| match field {
        Some(v) if *v.get_ref() < 16 => Err(src.error_at(v, format!("{what} must be at least 16"))),
        Some(v) => Ok(*v.get_ref()),
        None => Ok(fallback),
    };
    let range = |field: Option<&Spanned<[f64; 2]>>, fallback: [f64; 2], what: &str| match field {
        Some(v) => {
            let [lo, hi] = *v.get_ref();
            if lo > 0.0 && lo <= hi && hi.is_finite() {
                Ok([lo, hi])
            } else {
                Err(src.error_at(
                    v,
                    format!("{what} must be [low, high] with 0 < low <= high"),
                ))
            }
        }
        None => Ok(fallback),
    };
    let transform = Transform {
        // 0: the backbone's default crop (see for_backbone).
        crop: side(table.and_then(|t| t.crop.as_ref()), 0, "crop")?,
        test_crop: side(
            table.and_then(|t| t.test_crop.as_ref()),
            default.transform.test_crop,
            "test_crop",
        )?,
        resize: side(
            table.and_then(|t| t.resize.as_ref()),
            default.transform.resize,
            "resize",
        )?,
        scale: range(
            table.and_then(|t| t.scale.as_ref()),
            default.transform.scale,
            "scale",
        )?,
        ratio: range(
            table.and_then(|t| t.ratio.as_ref()),
            default.transform.ratio,
            "ratio",
        )?,
        flip: table.and_then(|t| t.flip).unwrap_or(default.transform.flip),
        normalization: default.transform.normalization,
    };
    if let Some(scale) = table.and_then(|t| t.scale.as_ref())
        && scale.get_ref()[1] > 1.0
    {
        return Err(src.error_at(scale, "scale is a fraction of the image: at most 1"));
    }
    let val_fraction = resolve_val_fraction(
        table.and_then(|t| t.val_fraction.as_ref()),
        default.val_fraction,
        src,
    )?;
    let config = PhotoConfig {
        train_per_class: table
            .and_then(|t| t.train_per_class)
            .unwrap_or(default.train_per_class),
        val_fraction,
        split_seed: table
            .and_then(|t| t.split_seed)
            .unwrap_or(default.split_seed),
        validation: table
            .and_then(|t| t.validation)
            .unwrap_or(default.validation),
        fold: None,
        transform,
    };
    let wrap = |c: PhotoConfig| match name {
        DatasetName::Cub => DatasetConfig::Cub(c),
        DatasetName::Cars => DatasetConfig::Cars(c),
        DatasetName::Sop => DatasetConfig::Sop(c),
        _ => DatasetConfig::InShop(c),
    };
    let validation = config.validation;
    let variants = fold_variants(
        wrap(config),
        table.and_then(|t| t.folds.as_ref()),
        validation,
        src,
    )?;
    Ok(ResolvedDataset {
        variants,
        root: resolve_root(table.and_then(|t| t.root.as_ref()), name),
        settings: table.map(|t| t.train.clone()).unwrap_or_default(),
    })
}

fn resolve_backbone(
    file: &MatrixFile,
    src: &Source,
    kind: BackboneKind,
) -> Result<(BackboneConfig, Option<PathBuf>), BadInput> {
    let table = file.backbones.get(kind);
    let weights = table.and_then(|t| t.weights.as_ref());
    let pretrained = match weights {
        Some(w) => {
            let name = Path::new(w.get_ref()).file_name().and_then(|n| n.to_str());
            match name {
                Some(name) if !w.get_ref().ends_with('/') => Some(name.to_string()),
                _ => {
                    return Err(src.error_at(w, "weights must name a state dict file (.pth / .pt)"));
                }
            }
        }
        None => None,
    };
    let config = BackboneConfig {
        name: kind,
        pretrained,
        freeze_batchnorm: table.and_then(|t| t.freeze_batchnorm).unwrap_or(false),
    };
    // Relative paths in a matrix are relative to the working directory, as on the command line.
    Ok((config, weights.map(|w| PathBuf::from(w.get_ref()))))
}

fn resolve_reduction(settings: &Settings, src: &Source) -> Result<usize, BadInput> {
    match &settings.reduction {
        Some(r) if *r.get_ref() == 0 => Err(src.error_at(r, "reduction must be at least 1")),
        Some(r) => Ok(*r.get_ref()),
        None => Ok(defaults::REDUCTION),
    }
}

fn resolve_train(
    settings: &Settings,
    dataset: &DatasetConfig,
    src: &Source,
) -> Result<TrainConfig, BadInput> {
    fn get<T: Copy>(field: &Option<Spanned<T>>, default: T) -> T {
        field.as_ref().map_or(default, |f| *f.get_ref())
    }
    let positive = |field: &Option<Spanned<usize>>, name: &str| -> Result<(), BadInput> {
        match field {
            Some(f) if *f.get_ref() == 0 => {
                Err(src.error_at(f, format!("{name} must be at least 1")))
            }
            _ => Ok(()),
        }
    };
    positive(&settings.epochs, "epochs")?;
    positive(&settings.batch_size, "batch_size")?;
    positive(&settings.samples_per_class, "samples_per_class")?;
    for (field, name) in [
        (&settings.lr, "lr"),
        (&settings.weight_decay, "weight_decay"),
        (&settings.head_lr, "head_lr"),
        (&settings.head_weight_decay, "head_weight_decay"),
        (&settings.query_lr, "query_lr"),
        (&settings.query_weight_decay, "query_weight_decay"),
        (&settings.lr_gamma, "lr_gamma"),
        (&settings.lambda_div, "lambda_div"),
    ] {
        if let Some(f) = field
            && (!f.get_ref().is_finite() || *f.get_ref() < 0.0)
        {
            return Err(src.error_at(f, format!("{name} must be a finite number >= 0")));
        }
    }
    let lr = get(&settings.lr, defaults::LR);
    let weight_decay = get(&settings.weight_decay, defaults::WEIGHT_DECAY);
    let head_lr = get(&settings.head_lr, lr);
    let head_weight_decay = get(&settings.head_weight_decay, weight_decay);
    let mut lr_milestones = settings
        .lr_milestones
        .as_ref()
        .map_or_else(Vec::new, |m| m.get_ref().clone());
    lr_milestones.sort_unstable();
    lr_milestones.dedup();
    let train = TrainConfig {
        epochs: get(&settings.epochs, defaults::EPOCHS),
        batch_size: get(&settings.batch_size, defaults::BATCH_SIZE),
        samples_per_class: get(&settings.samples_per_class, defaults::SAMPLES_PER_CLASS),
        lr,
        weight_decay,
        head_lr,
        head_weight_decay,
        query_lr: get(&settings.query_lr, head_lr),
        query_weight_decay: get(&settings.query_weight_decay, head_weight_decay),
        lr_milestones,
        lr_gamma: get(&settings.lr_gamma, defaults::LR_GAMMA),
        lambda_div: get(&settings.lambda_div, defaults::LAMBDA_DIV),
        recall_k: settings
            .recall_k
            .as_ref()
            .map_or_else(|| defaults::RECALL_K.to_vec(), |k| k.get_ref().clone()),
        selection_metric: String::new(),
    };
    if let Some(k) = &settings.recall_k
        && (k.get_ref().is_empty() || k.get_ref().contains(&0))
    {
        return Err(src.error_at(k, "recall_k must list at least one K >= 1"));
    }
    let selection = settings.selection_metric.as_ref().map_or_else(
        || defaults::SELECTION_METRIC.to_string(),
        |m| m.get_ref().clone(),
    );
    let recall_names: Vec<String> = train
        .recall_k
        .iter()
        .map(|k| format!("recall@{k}"))
        .collect();
    if selection != "map@r" && selection != "r_precision" && !recall_names.contains(&selection) {
        let field = settings
            .selection_metric
            .as_ref()
            .expect("only a set metric can be unknown");
        return Err(src.error_at(
            field,
            format!(
                "selection_metric `{selection}` is not computed (choose map@r, r_precision or one of {})",
                recall_names.join(", ")
            ),
        ));
    }
    let train = TrainConfig {
        selection_metric: selection,
        ..train
    };
    let batch_problem = if !train.batch_size.is_multiple_of(train.samples_per_class) {
        Some(format!(
            "batch_size {} is not a multiple of samples_per_class {}",
            train.batch_size, train.samples_per_class
        ))
    } else if let Some(classes) = dataset.train_class_count()
        && train.batch_size / train.samples_per_class > classes
    {
        Some(format!(
            "a batch of {} images with {} per class needs {} classes, but the training split has {classes}",
            train.batch_size,
            train.samples_per_class,
            train.batch_size / train.samples_per_class,
        ))
    } else {
        None
    };
    if let Some(problem) = batch_problem {
        return Err(
            match settings
                .batch_size
                .as_ref()
                .or(settings.samples_per_class.as_ref())
            {
                Some(field) => src.error_at(field, problem),
                None => BadInput::new(format!(
                    "{}: {problem} (built-in defaults)",
                    src.path.display()
                )),
            },
        );
    }
    Ok(train)
}
