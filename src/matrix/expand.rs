//! Validation and expansion of a parsed matrix into effective run configurations.

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;

use super::filter::Selection;
use super::layer::{Layer, keys_of};
use super::schema::{AxisList, MatrixFile};
use super::source::Source;
use super::{AxisValues, PlannedCell};
use crate::data::{
    ClassFold, DatasetConfig, DatasetName, FashionMnistConfig, Normalization, OwnConfig, OwnKind,
    OwnPlace, PhotoConfig, SyntheticConfig, Transform, Validation,
};
use crate::error::{BadInput, Invalid};
use crate::loss::{LossConfig, LossName};
use crate::model::{BackboneConfig, BackboneKind, HeadKind};
use crate::train::Protocol;
use crate::train::config::{ModelSettings, RunConfig, TrainConfig};

/// The cells of a matrix and how many combinations were left out.
#[derive(Default)]
pub(super) struct Expansion {
    pub cells: Vec<PlannedCell>,
    pub excluded: usize,
    pub not_applicable: usize,
}

/// Checks the axes and expands their product, minus excludes and inapplicable combinations.
/// Each cell's configuration is resolved here, once: built-in defaults <- `[defaults]` <-
/// the dataset's `train` table <- the cell's axis values.
pub(super) fn expand(file: &MatrixFile, src: &Source) -> Result<Expansion, BadInput> {
    check_axes(file, src)?;
    let axes = file.axes.get_ref();
    let mut expansion = Expansion::default();
    let mut seen = HashSet::new();
    let excludes: Vec<Selection> = file
        .exclude
        .iter()
        .map(|r| r.get_ref().selection())
        .collect();
    let sizes: Vec<&Spanned<usize>> = match &axes.embedding_size {
        Some(axis) => axis.get_ref().iter().collect(),
        None => Vec::new(),
    };
    let protocols: Vec<Protocol> = match &axes.protocol {
        Some(axis) => axis.get_ref().iter().map(|p| *p.get_ref()).collect(),
        None => vec![Protocol::HeldOut],
    };
    let backbones = (axes.backbone.get_ref().iter())
        .map(|b| resolve_backbone(file, src, *b.get_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    for dataset in axes.dataset.get_ref() {
        let resolved = resolve_dataset(file, src, dataset)?;
        let layer = file.defaults.overlaid(&resolved.settings);
        let (model, train) = resolve_settings(&layer, src)?;
        let losses = resolve_losses(file, &resolved.losses, src)?;
        for (backbone_config, weights) in &backbones {
            for (protocol, base_dataset, fold) in resolved.under(&protocols) {
                let dataset_config = for_backbone(&base_dataset, backbone_config.name);
                if let Some(classes) = dataset_config.train_class_count() {
                    check_rule(train.check_classes(classes), &layer, src)?;
                }
                let template = CellTemplate {
                    protocol,
                    dataset: dataset.get_ref().clone(),
                    fold,
                    config: RunConfig {
                        dataset: dataset_config,
                        backbone: backbone_config.clone(),
                        head: HeadKind::None,
                        loss: losses[0].1.clone(),
                        groups: 1,
                        embedding_size: model.embedding_size,
                        reduction: model.reduction,
                        seed: 0,
                        train: train.clone(),
                    },
                    data_root: &resolved.root,
                    data_table: &resolved.table,
                    weights,
                    excludes: &excludes,
                    losses: &losses,
                };
                template.expand_into(file, src, &sizes, &mut seen, &mut expansion)?;
            }
        }
    }
    Ok(expansion)
}

/// The model settings and the settled training configuration of one dataset's settings layer
/// (`[defaults]` <- `[datasets.<name>.train]`), each checked against its rules.
fn resolve_settings(layer: &Layer, src: &Source) -> Result<(ModelSettings, TrainConfig), BadInput> {
    let (train_keys, model_keys) = (keys_of::<TrainConfig>(), keys_of::<ModelSettings>());
    let known: Vec<&str> = train_keys.iter().chain(model_keys).copied().collect();
    layer.check_keys(&known, "setting", src)?;
    let model: ModelSettings = layer.filtered(|k| model_keys.contains(&k)).resolve(src)?;
    check_rule(model.check(), layer, src)?;
    let train: TrainConfig = layer.filtered(|k| train_keys.contains(&k)).resolve(src)?;
    check_rule(train.check(), layer, src)?;
    Ok((model, train.settled()))
}

/// What the cells of one (dataset, fold, backbone) share; the inner axes vary the rest.
struct CellTemplate<'a> {
    protocol: Protocol,
    dataset: DatasetName,
    fold: Option<usize>,
    config: RunConfig,
    data_root: &'a PathBuf,
    data_table: &'a Option<PathBuf>,
    weights: &'a Option<PathBuf>,
    /// The matrix's `[[exclude]]` rules.
    excludes: &'a [Selection],
    /// Each loss of the axis with its parameters on this dataset.
    losses: &'a [(LossName, LossConfig)],
}

impl CellTemplate<'_> {
    /// Adds a cell per (head, loss, embedding size, groups, seed) that no rule excludes.
    fn expand_into(
        &self,
        file: &MatrixFile,
        src: &Source,
        sizes: &[&Spanned<usize>],
        seen: &mut HashSet<String>,
        out: &mut Expansion,
    ) -> Result<(), BadInput> {
        let axes = file.axes.get_ref();
        let default_size = Spanned::new(0..0, self.config.embedding_size);
        let sizes = if sizes.is_empty() {
            vec![&default_size]
        } else {
            sizes.to_vec()
        };
        for head in axes.head.get_ref() {
            for loss in axes.loss.get_ref() {
                for size in &sizes {
                    for groups in axes.groups.get_ref() {
                        for seed in axes.seed.get_ref() {
                            let values = AxisValues {
                                protocol: self.protocol,
                                dataset: self.dataset.clone(),
                                backbone: self.config.backbone.name,
                                head: *head.get_ref(),
                                loss: *loss.get_ref(),
                                embedding_size: *size.get_ref(),
                                groups: *groups.get_ref(),
                                seed: *seed.get_ref(),
                                fold: self.fold,
                            };
                            self.add_cell(src, values, groups, seen, out)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The cell of `values`, unless a rule excludes it or it does not exist; its hash once.
    fn add_cell(
        &self,
        src: &Source,
        values: AxisValues,
        groups: &Spanned<usize>,
        seen: &mut HashSet<String>,
        out: &mut Expansion,
    ) -> Result<(), BadInput> {
        if self.excludes.iter().any(|rule| rule.matches(&values)) {
            out.excluded += 1;
            return Ok(());
        }
        // A head without groups has exactly one: other counts are no cells.
        if !values.head.has_groups() && values.groups != 1 {
            out.not_applicable += 1;
            return Ok(());
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
            head: values.head,
            loss: (self.losses.iter())
                .find(|(name, _)| *name == values.loss)
                .map(|(_, config)| config.clone())
                .expect("every loss of the axis is resolved"),
            groups: values.groups,
            embedding_size: values.embedding_size,
            seed: values.seed,
            ..self.config.clone()
        };
        let hash = super::hash::config_hash(&config);
        if seen.insert(hash.clone()) {
            out.cells.push(PlannedCell {
                hash,
                config,
                values,
                data_root: self.data_root.clone(),
                data_table: self.data_table.clone(),
                weights: self.weights.clone(),
            });
        }
        Ok(())
    }
}

/// A broken rule as bad input, pointing at the first of its keys that `layer` sets.
fn check_rule(result: Result<(), Invalid>, layer: &Layer, src: &Source) -> Result<(), BadInput> {
    let Err(invalid) = result else {
        return Ok(());
    };
    Err(match invalid.keys.iter().find_map(|key| layer.span(key)) {
        Some(span) => src.at(span.start, invalid.message),
        None => BadInput::new(format!(
            "{}: {} (built-in defaults)",
            src.path.display(),
            invalid.message
        )),
    })
}

fn check_axes(file: &MatrixFile, src: &Source) -> Result<(), BadInput> {
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
    if let Some(protocols) = &axes.protocol {
        check_axis(src, "protocol", protocols)?;
    }
    for groups in axes.groups.get_ref() {
        if *groups.get_ref() == 0 {
            return Err(src.error_at(groups, "a group count must be at least 1"));
        }
    }
    check_dataset_tables(file, src)
}

/// Every `[datasets.<name>]` table is a built-in dataset's or has a kind, an own dataset's
/// name can name report files, and an exclude rule names no dataset that does not exist.
fn check_dataset_tables(file: &MatrixFile, src: &Source) -> Result<(), BadInput> {
    for rule in &file.exclude {
        let names = rule.get_ref().dataset.iter().flat_map(|d| &d.0);
        if let Some(DatasetName::Own(name)) = names
            .into_iter()
            .find(|d| matches!(d, DatasetName::Own(_)) && file.datasets.get(d).is_none())
        {
            return Err(src.error_at(
                rule,
                format!(
                    "[[exclude]] dataset `{name}` is neither built in ({}) nor a [datasets.{name}] \
                     table",
                    DatasetName::BUILT_IN.join(", ")
                ),
            ));
        }
    }
    for (name, table) in file.datasets.iter() {
        if DatasetName::BUILT_IN.contains(&name.as_str()) {
            continue;
        }
        if table.get_ref().span("kind").is_none() {
            return Err(src.error_at(
                table,
                format!(
                    "[datasets.{name}]: `{name}` is not a built-in dataset ({}); an own dataset \
                     says its kind: kind = \"csv\" or \"image-folder\" (docs/own-data.md)",
                    DatasetName::BUILT_IN.join(", ")
                ),
            ));
        }
        let valid = (name.chars()).all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(src.error_at(
                table,
                format!(
                    "[datasets.{name}]: a dataset's name must be letters, digits, '-' or '_' \
                     (it names report files)"
                ),
            ));
        }
    }
    Ok(())
}

fn check_axis<T: PartialEq + Debug>(
    src: &Source,
    name: &str,
    axis: &AxisList<T>,
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

/// A dataset axis value resolved: its configuration (one per fold with k-fold validation),
/// where it lives and its settings.
struct ResolvedDataset {
    variants: Vec<(DatasetConfig, Option<usize>)>,
    root: PathBuf,
    /// A csv dataset's table.
    table: Option<PathBuf>,
    settings: Layer,
    /// `[datasets.<name>.losses]`: loss parameters of this dataset's cells.
    losses: Layer,
}

impl ResolvedDataset {
    /// The dataset's configurations under each protocol: the held-out one's variants (a
    /// cell per fold with k-fold validation), and one without validation for test-selected.
    fn under(&self, protocols: &[Protocol]) -> Vec<(Protocol, DatasetConfig, Option<usize>)> {
        let mut out = Vec::new();
        for &protocol in protocols {
            match protocol {
                Protocol::HeldOut => out.extend(
                    (self.variants.iter()).map(|(config, fold)| (protocol, config.clone(), *fold)),
                ),
                Protocol::TestSelected => {
                    out.push((protocol, self.variants[0].0.without_validation(), None));
                }
            }
        }
        out
    }
}

/// Keys of a dataset table that are not the dataset's parameters.
const TABLE_KEYS: [&str; 4] = ["root", "folds", "train", "losses"];
/// Keys of an own dataset's table that say where and what it is.
const OWN_KEYS: [&str; 2] = ["kind", "table"];

/// Each loss of the `loss` axis with its effective parameters on a dataset: its defaults <-
/// `[losses.<loss>]` <- `[datasets.<name>.losses.<loss>]`.
fn resolve_losses(
    file: &MatrixFile,
    dataset_losses: &Layer,
    src: &Source,
) -> Result<Vec<(LossName, LossConfig)>, BadInput> {
    let names: Vec<String> = LossName::ALL.iter().map(|l| l.to_string()).collect();
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    dataset_losses.check_keys(&known, "loss", src)?;
    let mut losses = Vec::new();
    for loss in file.axes.get_ref().loss.get_ref() {
        let name = *loss.get_ref();
        let base = file.losses.get(name).cloned().unwrap_or_default();
        let layer = base.overlaid(&dataset_losses.table(&name.to_string(), src)?);
        let config = layer.resolve_tagged(Some(("name", &name.to_string())), src)?;
        losses.push((name, config));
    }
    Ok(losses)
}

fn resolve_dataset(
    file: &MatrixFile,
    src: &Source,
    name: &Spanned<DatasetName>,
) -> Result<ResolvedDataset, BadInput> {
    let table = match (file.datasets.get(name.get_ref()), name.get_ref()) {
        (Some(table), _) => table.get_ref().clone(),
        (None, DatasetName::Own(own)) => {
            return Err(src.error_at(
                name,
                format!(
                    "dataset `{own}` is neither built in ({}) nor a [datasets.{own}] table of \
                     the matrix (an own dataset: docs/own-data.md)",
                    DatasetName::BUILT_IN.join(", ")
                ),
            ));
        }
        (None, _) => Layer::default(),
    };
    let params = table.filtered(|k| !TABLE_KEYS.contains(&k));
    let (config, place) = match name.get_ref() {
        DatasetName::Synthetic => {
            // Generated in memory, with no folds: nowhere to read and nothing to fold.
            if let Some(key) = ["root", "folds"]
                .into_iter()
                .find(|k| table.span(k).is_some())
            {
                let span = table.span(key).expect("found");
                let message =
                    format!("`{key}`: the synthetic set is generated in memory: no root, no folds");
                return Err(src.at(span.start, message));
            }
            let config: SyntheticConfig = resolve_params(&params, &[], src)?;
            check_rule(config.check(), &params, src)?;
            (DatasetConfig::Synthetic(config), None)
        }
        DatasetName::FashionMnist => {
            let config: FashionMnistConfig = resolve_params(&params, &[], src)?;
            check_rule(config.check(), &params, src)?;
            (DatasetConfig::FashionMnist(config), None)
        }
        DatasetName::Own(_) => {
            let (config, root, table_path) = resolve_own(&table, &params, src)?;
            (config, Some((root, table_path)))
        }
        built_in => {
            let config = resolve_photo(&params, &[], src)?;
            let config = match built_in {
                DatasetName::Cub => DatasetConfig::Cub(config),
                DatasetName::Cars => DatasetConfig::Cars(config),
                DatasetName::Sop => DatasetConfig::Sop(config),
                _ => DatasetConfig::InShop(config),
            };
            (config, None)
        }
    };
    if config.validation() == Validation::None {
        let span = params.span("validation").unwrap_or_else(|| name.span());
        let message = "validation = \"none\" is the test-selected protocol: list it on the \
                       protocol axis ([axes] protocol = [\"held-out\", \"test-selected\"])";
        return Err(src.at(span.start, message));
    }
    let (root, table_path) = match place {
        Some(own) => own,
        None => (root_of(&table, name.get_ref(), src)?, None),
    };
    let folds = table.get::<usize>("folds", src)?;
    Ok(ResolvedDataset {
        variants: fold_variants(config, folds.as_ref(), src)?,
        root,
        table: table_path,
        settings: table.table("train", src)?,
        losses: table.table("losses", src)?,
    })
}

/// A built-in dataset's root: the table's `root`, else its default place.
fn root_of(table: &Layer, name: &DatasetName, src: &Source) -> Result<PathBuf, BadInput> {
    Ok(table.get::<String>("root", src)?.map_or_else(
        || PathBuf::from(name.default_root().unwrap_or_default()),
        |r| r.into_inner().into(),
    ))
}

/// An own dataset's configuration, with its content's sha256 read from the data now (a bad
/// table is bad input before anything trains), and where it lives: its root and its table.
fn resolve_own(
    table: &Layer,
    params: &Layer,
    src: &Source,
) -> Result<(DatasetConfig, PathBuf, Option<PathBuf>), BadInput> {
    let kind = table
        .get::<OwnKind>("kind", src)?
        .expect("checked with the tables");
    let root = table.get::<String>("root", src)?.ok_or_else(|| {
        src.error_at(
            &kind,
            "an own dataset needs its root: root = \"path/to/images\"",
        )
    })?;
    let root = PathBuf::from(root.into_inner());
    let table_path = match (kind.get_ref(), table.get::<String>("table", src)?) {
        // OpenMetricLearning's name for it; relative to the root, as its image paths are.
        (OwnKind::Csv, None) => Some(root.join("df.csv")),
        (OwnKind::Csv, Some(t)) => Some(root.join(t.into_inner())),
        (OwnKind::ImageFolder, None) => None,
        (OwnKind::ImageFolder, Some(t)) => {
            return Err(src.error_at(&t, "an image folder has no table: its folders list it"));
        }
    };
    let photo = resolve_photo(params, &OWN_KEYS, src)?;
    let place = OwnPlace {
        kind: *kind.get_ref(),
        root: &root,
        table: table_path.as_deref(),
    };
    let content = place.content(photo.validation)?;
    if let (true, Some(folds)) = (content.has_validation, table.span("folds")) {
        return Err(src.at(
            folds.start,
            "the data lists its own validation split (validation rows or folder), which \
             replaces a carved one: folds would train the same model k times",
        ));
    }
    let own = OwnConfig {
        content_sha256: content.sha256,
        photo,
    };
    let config = match kind.get_ref() {
        OwnKind::Csv => DatasetConfig::Csv(own),
        OwnKind::ImageFolder => DatasetConfig::ImageFolder(own),
    };
    Ok((config, root, table_path))
}

/// A dataset's parameters from its table: the fields of `T` (but the fold, which `folds`
/// sets, and a photo set's nested transform, whose fields are written flat) and the `extra`
/// keys that the caller resolves itself.
fn resolve_params<T: DeserializeOwned>(
    params: &Layer,
    extra: &[&str],
    src: &Source,
) -> Result<T, BadInput> {
    let mut known: Vec<&str> = keys_of::<T>()
        .iter()
        .copied()
        .filter(|k| !["fold", "transform"].contains(k))
        .collect();
    known.extend(extra.iter().copied().chain(TABLE_KEYS));
    params.check_keys(&known, "dataset parameter", src)?;
    params.filtered(|k| !extra.contains(&k)).resolve(src)
}

/// A photo dataset's parameters: its split's, and its transform's written flat in the table;
/// `own` are the own dataset's keys that the caller reads.
fn resolve_photo(params: &Layer, own: &[&str], src: &Source) -> Result<PhotoConfig, BadInput> {
    // The matrix chooses no normalisation: the backbone does (see for_backbone).
    let transform_keys: Vec<&str> = keys_of::<Transform>()
        .iter()
        .copied()
        .filter(|k| *k != "normalization")
        .collect();
    let extra: Vec<&str> = transform_keys.iter().chain(own).copied().collect();
    let mut config: PhotoConfig = resolve_params(params, &extra, src)?;
    config.transform = params
        .filtered(|k| transform_keys.contains(&k))
        .resolve(src)?;
    check_rule(config.check(), params, src)?;
    // A photo dataset's validation is class-disjoint unless the table says otherwise
    // (PhotoConfig's default; serde's for a stored configuration is `images`, which a
    // configuration leaves out of its JSON).
    if params.span("validation").is_none() {
        config.validation = PhotoConfig::default().validation;
    }
    // A crop the table leaves out is the backbone's (0, filled in by for_backbone).
    for (key, crop) in [
        ("crop", &mut config.transform.crop),
        ("test_crop", &mut config.transform.test_crop),
    ] {
        if params.span(key).is_none() {
            *crop = 0;
        }
    }
    Ok(config)
}

/// `config` for one fold each when `folds` is set, else `config` alone.
fn fold_variants(
    config: DatasetConfig,
    folds: Option<&Spanned<usize>>,
    src: &Source,
) -> Result<Vec<(DatasetConfig, Option<usize>)>, BadInput> {
    let Some(folds) = folds else {
        return Ok(vec![(config, None)]);
    };
    let k = *folds.get_ref();
    if k < 2 {
        return Err(src.error_at(folds, "folds must be at least 2"));
    }
    if config.validation() != Validation::Classes {
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
/// matrix set them, its training and test crop sides (227 for GoogLeNet, training and test,
/// as in the authors' code; 224 otherwise).
fn for_backbone(config: &DatasetConfig, backbone: BackboneKind) -> DatasetConfig {
    let mut config = config.clone();
    if let Some(photo) = config.photo_mut() {
        photo.transform.normalization = Normalization::of(backbone);
        let side = match backbone {
            BackboneKind::Googlenet => 227,
            _ => 224,
        };
        for crop in [&mut photo.transform.crop, &mut photo.transform.test_crop] {
            if *crop == 0 {
                *crop = side;
            }
        }
    }
    config
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
        freeze_batchnorm_affine: table
            .and_then(|t| t.freeze_batchnorm_affine)
            .unwrap_or(false),
        transform_input: table.and_then(|t| t.transform_input).unwrap_or(false),
    };
    if config.transform_input && kind != BackboneKind::Googlenet {
        return Err(BadInput::new(format!(
            "{}: [backbones.{kind}] transform_input is GoogLeNet's (torchvision's input transform)",
            src.path.display()
        )));
    }
    if config.freeze_batchnorm_affine && !config.freeze_batchnorm {
        return Err(BadInput::new(format!(
            "{}: [backbones.{kind}] freeze_batchnorm_affine needs freeze_batchnorm = true",
            src.path.display()
        )));
    }
    // Relative paths in a matrix are relative to the working directory, as on the command line.
    Ok((config, weights.map(|w| PathBuf::from(w.get_ref()))))
}
