//! Image sets (decoded in memory, or files decoded per batch) and the class-disjoint splits of
//! a run.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::pipeline::{ImageFile, Transform, View};
use crate::error::BadInput;

/// Where a set's pixels come from.
#[derive(Debug, Clone)]
pub enum Images {
    /// Normalised f32 pixels, `[n, channels, height, width]` row-major (Fashion-MNIST,
    /// synthetic).
    Decoded(Vec<f32>),
    /// Image files, decoded and transformed when a batch is drawn (the photo datasets).
    Files {
        files: Vec<ImageFile>,
        transform: Transform,
    },
}

/// Images with their labels. For file sets, `height` and `width` are the test view's side; a
/// training batch has the transform's crop side.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub images: Images,
    /// Dense class index per image (0..class_count within this set).
    pub labels: Vec<usize>,
    /// The dataset's own class id of each dense index.
    pub class_ids: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of classes.
    pub fn class_count(&self) -> usize {
        self.class_ids.len()
    }

    /// The pixels of a decoded set (tests; empty for a file set).
    pub fn decoded(&self) -> &[f32] {
        match &self.images {
            Images::Decoded(pixels) => pixels,
            Images::Files { .. } => &[],
        }
    }

    /// `[channels, height, width]` of the images of a batch seen as `view`.
    pub fn batch_shape(&self, view: View) -> [usize; 3] {
        match &self.images {
            Images::Decoded(_) => [self.channels, self.height, self.width],
            Images::Files { transform, .. } => {
                let side = transform.side(view);
                [self.channels, side, side]
            }
        }
    }

    /// Pixels of the images at `indices`, concatenated (a batch). Files are decoded in
    /// parallel; in a training view the `k`-th image is augmented as position
    /// `first_position + k` of the epoch. Decoded sets are the same in every view.
    pub fn batch(&self, indices: &[usize], view: View) -> Result<Vec<f32>, BadInput> {
        match &self.images {
            Images::Decoded(pixels) => {
                let len = self.image_len();
                let mut out = Vec::with_capacity(indices.len() * len);
                for &i in indices {
                    out.extend_from_slice(&pixels[i * len..(i + 1) * len]);
                }
                Ok(out)
            }
            Images::Files { files, transform } => {
                let images: Vec<Vec<f32>> = indices
                    .par_iter()
                    .enumerate()
                    .map(|(k, &i)| transform.load(&files[i], view.nth(k)))
                    .collect::<Result<_, _>>()?;
                Ok(images.concat())
            }
        }
    }

    /// Image indices of each dense class.
    pub fn indices_by_class(&self) -> Vec<Vec<usize>> {
        let mut by_class = vec![Vec::new(); self.class_count()];
        for (i, &label) in self.labels.iter().enumerate() {
            by_class[label].push(i);
        }
        by_class
    }
}

/// The sets of a run: train and validation come from the training classes; test classes are
/// disjoint from both. With a gallery (In-Shop), `test` holds the queries and retrieval is
/// query against gallery; otherwise every test image is a query against the others.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    pub gallery: Option<ImageSet>,
}

/// Builds an [`ImageSet`] of the classes `class_ids` (in that order) from raw images.
///
/// `per_class` caps the images kept per class (0 keeps all); which ones is decided by a
/// shuffle seeded with `seed`, so the subset is the same for every run of the matrix.
pub fn select_classes(
    all_pixels: &[f32],
    all_labels: &[u32],
    shape: (usize, usize, usize),
    class_ids: &[u32],
    per_class: usize,
    seed: u64,
) -> ImageSet {
    let (channels, height, width) = shape;
    let len = channels * height * width;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (dense, &class) in class_ids.iter().enumerate() {
        let mut members: Vec<usize> = (0..all_labels.len())
            .filter(|&i| all_labels[i] == class)
            .collect();
        keep_at_most(&mut members, per_class, seed, u64::from(class));
        for i in members {
            pixels.extend_from_slice(&all_pixels[i * len..(i + 1) * len]);
            labels.push(dense);
        }
    }
    ImageSet {
        images: Images::Decoded(pixels),
        labels,
        class_ids: class_ids.to_vec(),
        channels,
        height,
        width,
    }
}

/// Keeps at most `per_class` of a class's image `members` (0 keeps all), chosen by a shuffle
/// seeded with (`seed`, `key`), in increasing order.
pub fn keep_at_most(members: &mut Vec<usize>, per_class: usize, seed: u64, key: u64) {
    if per_class > 0 && members.len() > per_class {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (key << 32));
        members.shuffle(&mut rng);
        members.truncate(per_class);
        members.sort_unstable();
    }
}

/// A validation fraction is in (0, 1).
pub fn check_val_fraction(fraction: f64) -> Result<(), crate::error::Invalid> {
    if fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(crate::error::Invalid::new(
            &["val_fraction"],
            "val_fraction must be in (0, 1)",
        ))
    }
}

/// How the validation split is carved from the training classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validation {
    /// A fraction of each training class's images (every class in both splits).
    #[default]
    Images,
    /// A fraction of the training classes, with all their images (class-disjoint, as in
    /// "A Metric Learning Reality Check").
    Classes,
    /// No validation split: every training image trains, and the epoch is selected on the
    /// test set (the authors' protocol; the matrix's `protocol = "test-selected"`).
    None,
}

impl Validation {
    /// True for the default (which the cell hash leaves out, so older cells keep their hash).
    pub fn is_images(&self) -> bool {
        *self == Validation::Images
    }

    /// Training classes left for batches out of `classes` when holding out `fraction` (or
    /// `fold`).
    pub fn train_classes(self, classes: usize, fraction: f64, fold: Option<ClassFold>) -> usize {
        match (self, fold) {
            (Validation::Images | Validation::None, _) => classes,
            (Validation::Classes, None) => classes - held_classes(classes, fraction),
            (Validation::Classes, Some(fold)) => classes - fold.range(classes).len(),
        }
    }
}

/// One fold of a k-fold class-disjoint split: the training classes are shuffled (seeded) and
/// cut into `folds` parts of near-equal size; part `fold` (0-based) is the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFold {
    pub folds: usize,
    pub fold: usize,
}

impl ClassFold {
    /// Classes of fold `fold` out of `classes`: the sizes differ by at most one.
    fn range(self, classes: usize) -> std::ops::Range<usize> {
        let start = self.fold * classes / self.folds;
        let end = (self.fold + 1) * classes / self.folds;
        start..end
    }
}

/// Classes held out for validation: a rounded fraction, at least one, leaving at least one.
fn held_classes(classes: usize, fraction: f64) -> usize {
    ((classes as f64 * fraction).round() as usize).clamp(1, classes.saturating_sub(1).max(1))
}

/// Splits `set` into (train, validation) as `validation` says.
/// With `fold`, class-disjoint validation is that fold of a k-fold split instead of a fraction.
pub fn split_validation(
    set: &ImageSet,
    validation: Validation,
    fraction: f64,
    fold: Option<ClassFold>,
    seed: u64,
) -> (ImageSet, ImageSet) {
    match (validation, fold) {
        (Validation::Images, _) => hold_out(set, fraction, seed),
        (Validation::None, _) => (set.clone(), restrict(set, &[])),
        (Validation::Classes, None) => hold_out_classes(set, fraction, seed),
        (Validation::Classes, Some(fold)) => hold_out_fold(set, fold, seed),
    }
}

/// Splits `set` into (train, validation) classes by fold `fold` of a seeded k-fold partition
/// of its classes (every class is in the validation split of exactly one fold).
pub fn hold_out_fold(set: &ImageSet, fold: ClassFold, seed: u64) -> (ImageSet, ImageSet) {
    let mut ids = set.class_ids.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
    ids.shuffle(&mut rng);
    let range = fold.range(ids.len());
    let mut val_ids = ids[range.clone()].to_vec();
    let mut train_ids: Vec<u32> = ids[..range.start]
        .iter()
        .chain(&ids[range.end..])
        .copied()
        .collect();
    val_ids.sort_unstable();
    train_ids.sort_unstable();
    (restrict(set, &train_ids), restrict(set, &val_ids))
}

/// Splits `set` into (train, validation) classes: a seeded choice of classes, all their images.
pub fn hold_out_classes(set: &ImageSet, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
    let mut ids = set.class_ids.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
    ids.shuffle(&mut rng);
    let held = held_classes(ids.len(), fraction);
    let (mut val_ids, mut train_ids) = (ids[..held].to_vec(), ids[held..].to_vec());
    val_ids.sort_unstable();
    train_ids.sort_unstable();
    (restrict(set, &train_ids), restrict(set, &val_ids))
}

/// The images of `set` whose class is one of `class_ids`, relabelled densely in that order.
pub fn restrict(set: &ImageSet, class_ids: &[u32]) -> ImageSet {
    let mut indices = Vec::new();
    let mut labels = Vec::new();
    for (dense, class) in class_ids.iter().enumerate() {
        let Some(old) = set.class_ids.iter().position(|c| c == class) else {
            continue;
        };
        for (i, &label) in set.labels.iter().enumerate() {
            if label == old {
                indices.push(i);
                labels.push(dense);
            }
        }
    }
    ImageSet {
        labels,
        class_ids: class_ids.to_vec(),
        ..subset(set, &indices)
    }
}

/// Splits `set` into (train, validation) by holding out `fraction` of each class's images,
/// chosen by a shuffle seeded with `seed`. Both keep all classes.
pub fn hold_out(set: &ImageSet, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
    let mut train_idx = Vec::new();
    let mut val_idx = Vec::new();
    for (class, mut members) in set.indices_by_class().into_iter().enumerate() {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ class as u64);
        members.shuffle(&mut rng);
        let held = ((members.len() as f64 * fraction).round() as usize)
            .clamp(1.min(members.len()), members.len());
        let (val, train) = members.split_at(held);
        val_idx.extend_from_slice(val);
        train_idx.extend_from_slice(train);
    }
    train_idx.sort_unstable();
    val_idx.sort_unstable();
    (subset(set, &train_idx), subset(set, &val_idx))
}

/// The images at `indices` (same classes, same labels).
pub fn subset(set: &ImageSet, indices: &[usize]) -> ImageSet {
    let images = match &set.images {
        Images::Decoded(_) => Images::Decoded(set.batch(indices, View::Test).expect("in memory")),
        Images::Files { files, transform } => Images::Files {
            files: indices.iter().map(|&i| files[i].clone()).collect(),
            transform: transform.clone(),
        },
    };
    ImageSet {
        images,
        labels: indices.iter().map(|&i| set.labels[i]).collect(),
        class_ids: set.class_ids.clone(),
        channels: set.channels,
        height: set.height,
        width: set.width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> (Vec<f32>, Vec<u32>) {
        // 12 one-pixel images: value = index, class = index % 3.
        let pixels: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let labels: Vec<u32> = (0..12).map(|i| i % 3).collect();
        (pixels, labels)
    }

    #[test]
    fn select_classes_keeps_only_the_asked_classes_densely_labelled() {
        let (pixels, labels) = toy();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &[2, 0], 0, 0);
        assert_eq!(set.len(), 8);
        assert_eq!(set.class_ids, vec![2, 0]);
        // Class 2 becomes dense 0: images 2, 5, 8, 11.
        assert_eq!(&set.decoded()[..4], &[2.0, 5.0, 8.0, 11.0]);
        assert_eq!(&set.labels[..4], &[0, 0, 0, 0]);
        assert_eq!(&set.labels[4..], &[1, 1, 1, 1]);
    }

    #[test]
    fn per_class_cap_is_seeded_and_respected() {
        let (pixels, labels) = toy();
        let a = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1], 2, 7);
        let b = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1], 2, 7);
        assert_eq!(a.len(), 4);
        assert_eq!(a.decoded(), b.decoded());
        assert!(
            a.decoded()[..2]
                .iter()
                .all(|&v| (v as u32).is_multiple_of(3))
        );
    }

    #[test]
    fn class_hold_out_is_class_disjoint() {
        let (pixels, labels) = toy();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1, 2], 0, 0);
        let (train, val) = split_validation(&set, Validation::Classes, 0.34, None, 5);
        assert_eq!(val.class_count(), 1);
        assert_eq!(train.class_count(), 2);
        assert_eq!(train.len() + val.len(), 12);
        assert!(train.class_ids.iter().all(|c| !val.class_ids.contains(c)));
        // Every held-out image keeps its class: its pixel value is a multiple of 3 plus the class.
        for (&p, &l) in val.decoded().iter().zip(&val.labels) {
            assert_eq!(p as u32 % 3, val.class_ids[l]);
        }
        assert_eq!(Validation::Classes.train_classes(3, 0.34, None), 2);
        assert_eq!(Validation::Images.train_classes(3, 0.34, None), 3);
    }

    #[test]
    fn class_folds_partition_the_classes() {
        let pixels: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let labels: Vec<u32> = (0..40).map(|i| i % 10).collect();
        let ids: Vec<u32> = (0..10).collect();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &ids, 0, 0);
        let mut seen = Vec::new();
        for fold in 0..4 {
            let fold = ClassFold { folds: 4, fold };
            let (train, val) = split_validation(&set, Validation::Classes, 0.5, Some(fold), 9);
            assert!((2..=3).contains(&val.class_count()));
            assert_eq!(train.class_count() + val.class_count(), 10);
            assert_eq!(
                Validation::Classes.train_classes(10, 0.5, Some(fold)),
                train.class_count()
            );
            assert!(train.class_ids.iter().all(|c| !val.class_ids.contains(c)));
            assert_eq!(val.len(), 4 * val.class_count());
            seen.extend(val.class_ids);
        }
        seen.sort_unstable();
        assert_eq!(seen, ids, "every class validates in exactly one fold");
    }

    #[test]
    fn hold_out_is_disjoint_and_covers_every_class() {
        let (pixels, labels) = toy();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1, 2], 0, 0);
        let (train, val) = hold_out(&set, 0.25, 3);
        assert_eq!(train.len() + val.len(), 12);
        assert_eq!(val.len(), 3);
        for v in val.decoded() {
            assert!(!train.decoded().contains(v));
        }
        let mut val_classes = val.labels.clone();
        val_classes.sort_unstable();
        assert_eq!(val_classes, vec![0, 1, 2]);
    }
}
