//! Fashion-MNIST (Xiao et al. 2017) from its IDX gzip files, split class-disjointly.
//!
//! Debian's `dataset-fashion-mnist` installs the four files under
//! /usr/share/datasets/fashion-mnist. Both IDX files (train and t10k) are pooled: the metric
//! learning split is by class, not by file.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::images::{
    ClassFold, Splits, Validation, check_val_fraction, select_classes, split_validation,
};
use crate::error::{BadInput, Invalid};

/// Where Debian's package puts the files.
pub const FASHION_MNIST_DEFAULT_ROOT: &str = "/usr/share/datasets/fashion-mnist";

const FILES: [(&str, &str); 2] = [
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
];

// Pixel statistics of the Fashion-MNIST training images (x / 255).
const MEAN: f32 = 0.2860;
const STD: f32 = 0.3530;

/// Which Fashion-MNIST classes and how many images of each a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FashionMnistConfig {
    pub train_classes: Vec<u8>,
    pub test_classes: Vec<u8>,
    /// Images kept per training class before the validation hold-out (0: all 7000).
    pub train_per_class: usize,
    /// Images kept per test class (0: all 7000).
    pub test_per_class: usize,
    /// Fraction of each training class held out for model selection.
    pub val_fraction: f64,
    /// Seed of the subset and hold-out shuffles (the same for every run seed).
    pub split_seed: u64,
    /// Held-out images of every training class, or held-out training classes.
    #[serde(default, skip_serializing_if = "Validation::is_images")]
    pub validation: Validation,
    /// With class-disjoint validation: the fold of a k-fold split instead of a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<ClassFold>,
}

impl Default for FashionMnistConfig {
    fn default() -> Self {
        Self {
            train_classes: vec![0, 1, 2, 3, 4],
            test_classes: vec![5, 6, 7, 8, 9],
            train_per_class: 0,
            test_per_class: 0,
            val_fraction: 0.1,
            split_seed: 0,
            validation: Validation::Images,
            fold: None,
        }
    }
}

impl FashionMnistConfig {
    /// Fashion-MNIST's rules: classes are 0..=9, the split is class-disjoint.
    pub fn check(&self) -> Result<(), Invalid> {
        for (keys, list) in [
            (&["train_classes"], &self.train_classes),
            (&["test_classes"], &self.test_classes),
        ] {
            if list.is_empty() || list.iter().any(|&c| c > 9) {
                return Err(Invalid::new(
                    keys,
                    "Fashion-MNIST classes are 0..=9 and a list is not empty",
                ));
            }
        }
        if let Some(shared) = self
            .train_classes
            .iter()
            .find(|c| self.test_classes.contains(c))
        {
            return Err(Invalid::new(
                &["test_classes", "train_classes"],
                format!(
                    "class {shared} is both a training and a test class: the split must be class-disjoint"
                ),
            ));
        }
        check_val_fraction(self.val_fraction)
    }
}

/// Reads all 70,000 images (normalised) and labels from `root`.
pub fn read_all(root: &Path) -> anyhow::Result<(Vec<f32>, Vec<u32>)> {
    if !root.is_dir() {
        return Err(BadInput::new(format!(
            "{}: Fashion-MNIST folder not found (expected {} and {}, ...; `apt-get install dataset-fashion-mnist` puts them in {FASHION_MNIST_DEFAULT_ROOT})",
            root.display(),
            FILES[0].0,
            FILES[0].1
        ))
        .into());
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (images_file, labels_file) in FILES {
        let (count, raw) = read_idx_images(&root.join(images_file))?;
        let file_labels = read_idx_labels(&root.join(labels_file))?;
        if file_labels.len() != count {
            return Err(BadInput::new(format!(
                "{}: {} labels for {count} images in {images_file}",
                root.join(labels_file).display(),
                file_labels.len()
            ))
            .into());
        }
        pixels.extend(raw.iter().map(|&p| (f32::from(p) / 255.0 - MEAN) / STD));
        labels.extend(file_labels);
    }
    Ok((pixels, labels))
}

/// The train / validation / test splits that `config` describes.
pub fn load_splits(config: &FashionMnistConfig, root: &Path) -> anyhow::Result<Splits> {
    let (pixels, labels) = read_all(root)?;
    let ids = |classes: &[u8]| classes.iter().map(|&c| u32::from(c)).collect::<Vec<u32>>();
    let shape = (1, 28, 28);
    let train_all = select_classes(
        &pixels,
        &labels,
        shape,
        &ids(&config.train_classes),
        config.train_per_class,
        config.split_seed,
    );
    let test = select_classes(
        &pixels,
        &labels,
        shape,
        &ids(&config.test_classes),
        config.test_per_class,
        config.split_seed,
    );
    let (train, val) = split_validation(
        &train_all,
        config.validation,
        config.val_fraction,
        config.fold,
        config.split_seed,
    );
    Ok(Splits {
        train,
        val,
        test,
        gallery: None,
    })
}

fn read_gz(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| BadInput::new(format!("{}: cannot open: {e}", path.display())))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| BadInput::new(format!("{}: not a readable gzip file: {e}", path.display())))?;
    Ok(bytes)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// IDX3 images: magic 0x803, count, rows, cols, then bytes.
fn read_idx_images(path: &Path) -> anyhow::Result<(usize, Vec<u8>)> {
    let bytes = read_gz(path)?;
    let bad = |what: &str| {
        BadInput::new(format!(
            "{}: not an IDX3 image file ({what})",
            path.display()
        ))
    };
    if bytes.len() < 16 || be_u32(&bytes, 0) != 0x0803 {
        return Err(bad("magic number").into());
    }
    let (count, rows, cols) = (
        be_u32(&bytes, 4) as usize,
        be_u32(&bytes, 8),
        be_u32(&bytes, 12),
    );
    if rows != 28 || cols != 28 {
        return Err(bad(&format!("{rows}x{cols} images, expected 28x28")).into());
    }
    if bytes.len() != 16 + count * 784 {
        return Err(bad("length").into());
    }
    Ok((count, bytes[16..].to_vec()))
}

/// IDX1 labels: magic 0x801, count, then bytes.
fn read_idx_labels(path: &Path) -> anyhow::Result<Vec<u32>> {
    let bytes = read_gz(path)?;
    if bytes.len() < 8
        || be_u32(&bytes, 0) != 0x0801
        || bytes.len() != 8 + be_u32(&bytes, 4) as usize
    {
        return Err(BadInput::new(format!("{}: not an IDX1 label file", path.display())).into());
    }
    Ok(bytes[8..].iter().map(|&b| u32::from(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_gz(path: &Path, bytes: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    }

    fn idx_images(values: &[u8]) -> Vec<u8> {
        let count = values.len() as u32;
        let mut out = vec![0, 0, 8, 3];
        for v in [count, 28, 28] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for &v in values {
            out.extend(std::iter::repeat_n(v, 784));
        }
        out
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, 1];
        out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        out.extend_from_slice(labels);
        out
    }

    #[test]
    fn reads_both_files_of_a_miniature_tree() {
        let dir = tempfile::tempdir().unwrap();
        write_gz(&dir.path().join(FILES[0].0), &idx_images(&[0, 255, 51]));
        write_gz(&dir.path().join(FILES[0].1), &idx_labels(&[0, 5, 9]));
        write_gz(&dir.path().join(FILES[1].0), &idx_images(&[102]));
        write_gz(&dir.path().join(FILES[1].1), &idx_labels(&[3]));
        let (pixels, labels) = read_all(dir.path()).unwrap();
        assert_eq!(labels, vec![0, 5, 9, 3]);
        assert_eq!(pixels.len(), 4 * 784);
        assert!((pixels[784] - (1.0 - MEAN) / STD).abs() < 1e-6);
        assert!((pixels[3 * 784] - (0.4 - MEAN) / STD).abs() < 1e-6);
    }

    #[test]
    fn a_missing_folder_or_file_is_bad_input_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let error = read_all(&missing).unwrap_err();
        assert!(crate::error::is_bad_input(&error));
        assert!(error.to_string().contains("nowhere"));
        let error = read_all(dir.path()).unwrap_err();
        assert!(crate::error::is_bad_input(&error));
        assert!(error.to_string().contains(FILES[0].0), "{error}");
    }

    #[test]
    fn a_wrong_magic_number_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        write_gz(&dir.path().join(FILES[0].0), &idx_labels(&[1, 2]));
        let error = read_idx_images(&dir.path().join(FILES[0].0)).unwrap_err();
        assert!(error.to_string().contains("IDX3"), "{error}");
    }
}
