//! In-memory image sets and the class-disjoint splits of a run.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Images as normalised f32 pixels, `[n, channels, height, width]` row-major, with labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub pixels: Vec<f32>,
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

    /// Pixels of the images at `indices`, concatenated (a batch).
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let len = self.image_len();
        let mut out = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            out.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
        }
        out
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

/// The three sets of a run: train and validation share their (training) classes; test classes
/// are disjoint from both.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
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
        if per_class > 0 && members.len() > per_class {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(class) << 32));
            members.shuffle(&mut rng);
            members.truncate(per_class);
            members.sort_unstable();
        }
        for i in members {
            pixels.extend_from_slice(&all_pixels[i * len..(i + 1) * len]);
            labels.push(dense);
        }
    }
    ImageSet {
        pixels,
        labels,
        class_ids: class_ids.to_vec(),
        channels,
        height,
        width,
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
}

impl Validation {
    /// True for the default (which the cell hash leaves out, so older cells keep their hash).
    pub fn is_images(&self) -> bool {
        *self == Validation::Images
    }

    /// Training classes left for batches out of `classes` when holding out `fraction`.
    pub fn train_classes(self, classes: usize, fraction: f64) -> usize {
        match self {
            Validation::Images => classes,
            Validation::Classes => classes - held_classes(classes, fraction),
        }
    }
}

/// Classes held out for validation: a rounded fraction, at least one, leaving at least one.
fn held_classes(classes: usize, fraction: f64) -> usize {
    ((classes as f64 * fraction).round() as usize).clamp(1, classes.saturating_sub(1).max(1))
}

/// Splits `set` into (train, validation) as `validation` says.
pub fn split_validation(
    set: &ImageSet,
    validation: Validation,
    fraction: f64,
    seed: u64,
) -> (ImageSet, ImageSet) {
    match validation {
        Validation::Images => hold_out(set, fraction, seed),
        Validation::Classes => hold_out_classes(set, fraction, seed),
    }
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
    let raw_labels: Vec<u32> = set.labels.iter().map(|&l| set.class_ids[l]).collect();
    let shape = (set.channels, set.height, set.width);
    (
        select_classes(&set.pixels, &raw_labels, shape, &train_ids, 0, seed),
        select_classes(&set.pixels, &raw_labels, shape, &val_ids, 0, seed),
    )
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

fn subset(set: &ImageSet, indices: &[usize]) -> ImageSet {
    ImageSet {
        pixels: set.gather(indices),
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
        assert_eq!(&set.pixels[..4], &[2.0, 5.0, 8.0, 11.0]);
        assert_eq!(&set.labels[..4], &[0, 0, 0, 0]);
        assert_eq!(&set.labels[4..], &[1, 1, 1, 1]);
    }

    #[test]
    fn per_class_cap_is_seeded_and_respected() {
        let (pixels, labels) = toy();
        let a = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1], 2, 7);
        let b = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1], 2, 7);
        assert_eq!(a.len(), 4);
        assert_eq!(a.pixels, b.pixels);
        assert!(a.pixels[..2].iter().all(|&v| (v as u32).is_multiple_of(3)));
    }

    #[test]
    fn class_hold_out_is_class_disjoint() {
        let (pixels, labels) = toy();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1, 2], 0, 0);
        let (train, val) = split_validation(&set, Validation::Classes, 0.34, 5);
        assert_eq!(val.class_count(), 1);
        assert_eq!(train.class_count(), 2);
        assert_eq!(train.len() + val.len(), 12);
        assert!(train.class_ids.iter().all(|c| !val.class_ids.contains(c)));
        // Every held-out image keeps its class: its pixel value is a multiple of 3 plus the class.
        for (&p, &l) in val.pixels.iter().zip(&val.labels) {
            assert_eq!(p as u32 % 3, val.class_ids[l]);
        }
        assert_eq!(Validation::Classes.train_classes(3, 0.34), 2);
        assert_eq!(Validation::Images.train_classes(3, 0.34), 3);
    }

    #[test]
    fn hold_out_is_disjoint_and_covers_every_class() {
        let (pixels, labels) = toy();
        let set = select_classes(&pixels, &labels, (1, 1, 1), &[0, 1, 2], 0, 0);
        let (train, val) = hold_out(&set, 0.25, 3);
        assert_eq!(train.len() + val.len(), 12);
        assert_eq!(val.len(), 3);
        for v in &val.pixels {
            assert!(!train.pixels.contains(v));
        }
        let mut val_classes = val.labels.clone();
        val_classes.sort_unstable();
        assert_eq!(val_classes, vec![0, 1, 2]);
    }
}
