//! The photo datasets of deep metric learning (CUB-200-2011, Cars196, Stanford Online Products,
//! In-Shop Clothes), read from their published layouts: each loader lists (image path, class)
//! pairs; this file turns a listing into the splits of a run, after checking that every listed
//! image is on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::images::{
    ClassFold, ImageSet, Images, Splits, Validation, keep_at_most, restrict, split_validation,
    subset,
};
use super::pipeline::{ImageFile, Transform};

use crate::error::{BadInput, Invalid};

/// One listed image.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub file: ImageFile,
    /// The dataset's own class (or item) id.
    pub class: u32,
}

impl Entry {
    /// An image of `class`, kept whole.
    pub fn new(path: PathBuf, class: u32) -> Entry {
        Entry {
            file: ImageFile::whole(path),
            class,
        }
    }
}

/// What a loader found: the training images, the test images and, for query-vs-gallery
/// datasets, the gallery (then `test` holds the queries); and a validation split where the
/// dataset lists one (a table's or a folder's own, instead of one carved from training).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub train: Vec<Entry>,
    pub test: Vec<Entry>,
    pub gallery: Option<Vec<Entry>>,
    pub validation: Option<Vec<Entry>>,
}

/// Split and pipeline parameters of a photo dataset (the part of a run's configuration that
/// says which images it trains, selects and tests on, and how they are transformed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhotoConfig {
    /// Images kept per training class before the validation split (0: all).
    pub train_per_class: usize,
    /// Fraction held out for model selection (of each class's images, or of the classes).
    pub val_fraction: f64,
    /// Seed of the subset and validation shuffles (the same for every run seed).
    pub split_seed: u64,
    #[serde(default, skip_serializing_if = "Validation::is_images")]
    pub validation: Validation,
    /// With class-disjoint validation: the fold of a k-fold split instead of a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<ClassFold>,
    pub transform: Transform,
}

impl Default for PhotoConfig {
    fn default() -> Self {
        Self {
            train_per_class: 0,
            val_fraction: 0.2,
            split_seed: 0,
            validation: Validation::Classes,
            fold: None,
            transform: Transform::default(),
        }
    }
}

impl PhotoConfig {
    /// The split's and the pipeline's rules.
    pub fn check(&self) -> Result<(), Invalid> {
        super::images::check_val_fraction(self.val_fraction)?;
        self.transform.check()
    }
}

/// Classes of `entries`, in increasing id order.
pub fn class_ids(entries: &[Entry]) -> Vec<u32> {
    entries
        .iter()
        .map(|e| e.class)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Fails, naming up to five of them, when listed images are not files.
pub fn check_files(listing: &Listing, root: &Path, layout: &str) -> Result<(), BadInput> {
    let all = listing
        .train
        .iter()
        .chain(&listing.test)
        .chain(listing.gallery.iter().flatten());
    let missing: Vec<&Path> = all
        .map(|e| e.file.path.as_path())
        .filter(|p| !p.is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    Err(BadInput::new(format!(
        "{}: {} listed image(s) missing, e.g. {} (expected layout: {layout})",
        root.display(),
        missing.len(),
        shown.join(", ")
    )))
}

/// An image set of `entries`: classes in increasing id order, densely labelled.
fn file_set(entries: &[Entry], transform: &Transform) -> ImageSet {
    let ids = class_ids(entries);
    let labels = entries
        .iter()
        .map(|e| ids.binary_search(&e.class).expect("listed class"))
        .collect();
    ImageSet {
        images: Images::Files {
            files: entries.iter().map(|e| e.file.clone()).collect(),
            transform: transform.clone(),
        },
        labels,
        class_ids: ids,
        channels: 3,
        height: transform.test_crop,
        width: transform.test_crop,
    }
}

/// Keeps at most `per_class` images of each class (a seeded choice; 0 keeps all).
fn cap_per_class(set: ImageSet, per_class: usize, seed: u64) -> ImageSet {
    if per_class == 0 {
        return set;
    }
    let mut keep = Vec::new();
    for (class, mut members) in set.indices_by_class().into_iter().enumerate() {
        keep_at_most(&mut members, per_class, seed, class as u64);
        keep.extend(members);
    }
    keep.sort_unstable();
    subset(&set, &keep)
}

/// The splits of a run from a checked listing.
pub fn splits(listing: &Listing, config: &PhotoConfig) -> Splits {
    let train_all = cap_per_class(
        file_set(&listing.train, &config.transform),
        config.train_per_class,
        config.split_seed,
    );
    let (train, val) = match (&listing.validation, config.validation) {
        // The dataset's own validation split replaces a carved one; the test-selected
        // protocol (no validation) leaves it unused.
        (Some(given), Validation::Images | Validation::Classes) => {
            (train_all, file_set(given, &config.transform))
        }
        _ => split_validation(
            &train_all,
            config.validation,
            config.val_fraction,
            config.fold,
            config.split_seed,
        ),
    };
    let test = file_set(&listing.test, &config.transform);
    let gallery = listing.gallery.as_ref().map(|gallery| {
        // Dense labels shared with the queries: the gallery's classes in the queries' order
        // first, then any gallery-only classes.
        let mut ids = test.class_ids.clone();
        let extra: Vec<u32> = class_ids(gallery)
            .into_iter()
            .filter(|c| !ids.contains(c))
            .collect();
        ids.extend(extra);
        restrict(&file_set(gallery, &config.transform), &ids)
    });
    Splits {
        train,
        val,
        test,
        gallery,
    }
}

/// Reads a text file of the layout, naming it and the layout when it is missing.
pub fn read_listing_file(path: &Path, layout: &str) -> Result<String, BadInput> {
    std::fs::read_to_string(path).map_err(|e| {
        BadInput::new(format!(
            "{}: cannot read ({e}); expected layout: {layout}",
            path.display()
        ))
    })
}

/// A layout error at `line` (1-based) of `path`.
pub fn bad_line(path: &Path, line: usize, message: impl std::fmt::Display) -> BadInput {
    BadInput::new(format!("{}:{line}: {message}", path.display()))
}

/// Fails when `root` is not a folder.
pub fn check_root(root: &Path, dataset: &str, layout: &str) -> Result<(), BadInput> {
    if root.is_dir() {
        Ok(())
    } else {
        Err(BadInput::new(format!(
            "{}: {dataset} folder not found (expected layout: {layout})",
            root.display()
        )))
    }
}

/// A temporary root holding `paths` (relative, folders made) as empty files: a listing's
/// images for the loaders' tests, which never decode them.
#[cfg(test)]
pub(crate) fn empty_files(paths: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for path in paths {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    root
}
