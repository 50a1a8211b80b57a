//! The loader line: JPEG decoding and augmentation per image against a ResNet-50 training step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agml::data::{ImageFile, ImageSet, Images, Transform, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::train::{STEP_BATCH, train_step_seconds};

const LOADER_IMAGES: usize = 96;

/// A CUB-like photo: 500 x 375, smooth colours plus texture (so JPEG decoding does real work).
fn write_jpegs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut rng = ChaCha8Rng::seed_from_u64(224);
    let mut paths = Vec::new();
    for i in 0..LOADER_IMAGES {
        let (a, b): (f32, f32) = (rng.random_range(0.01..0.05), rng.random_range(0.01..0.05));
        let image = image::RgbImage::from_fn(500, 375, |x, y| {
            let (x, y) = (x as f32, y as f32);
            let noise = ((x * 12.9898 + y * 78.233).sin() * 43758.547).fract() * 40.0;
            image::Rgb([
                (128.0 + 100.0 * (a * x).sin() + noise) as u8,
                (128.0 + 100.0 * (b * y).cos() + noise) as u8,
                (128.0 + 60.0 * (a * x + b * y).sin()) as u8,
            ])
        });
        let path = dir.join(format!("{i:03}.jpg"));
        image.save(&path)?;
        paths.push(path);
    }
    Ok(paths)
}

pub(crate) fn loader_bench(dir: &Path, threads: usize) -> anyhow::Result<Value> {
    let name = "loader/jpeg-224";
    let paths = write_jpegs(dir)?;
    let set = ImageSet {
        images: Images::Files {
            files: paths.iter().cloned().map(ImageFile::whole).collect(),
            transform: Transform::default(),
        },
        labels: vec![0; paths.len()],
        class_ids: vec![0],
        channels: 3,
        height: 224,
        width: 224,
    };
    let indices: Vec<usize> = (0..paths.len()).collect();
    let start = Instant::now();
    for (b, batch) in indices.chunks(STEP_BATCH).enumerate() {
        let view = View::Train {
            seed: 0,
            epoch: 0,
            position: b * STEP_BATCH,
        };
        set.batch(batch, view)?;
    }
    let per_image = start.elapsed().as_secs_f64() / paths.len() as f64;
    println!(
        "{name}: {:.0} images/s; timing one ResNet-50 training step...",
        1.0 / per_image
    );
    let flex = std::env::current_exe()?.with_file_name("train_step_bench");
    let step = train_step_seconds(&flex, "resnet50", 224, 1, "flex", threads)?;
    let step_per_image = step / STEP_BATCH as f64;
    let ratio = per_image / step_per_image;
    println!(
        "{name}: loader {:.1} images/s, ResNet-50 + attentive flex training step {:.2} images/s: \
         ratio {ratio:.4} (target <= 0.5)",
        1.0 / per_image,
        1.0 / step_per_image
    );
    Ok(json!({
        "name": name,
        "agml_seconds": per_image,
        "reference": "seconds per image of an agml flex training step, ResNet-50 + attentive, 224x224, batch 32",
        "reference_seconds": step_per_image,
        "ratio": ratio,
        "date": agml::store::utc_now(),
    }))
}
