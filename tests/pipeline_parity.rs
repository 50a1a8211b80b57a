//! The test transform against torchvision's with PIL (tests/fixtures/make_pipeline_fixtures.py,
//! run by `make fixtures`): decoding, Resize(256), CenterCrop(224) and ImageNet normalisation
//! of photo-sized JPEGs, colour and greyscale.
//!
//! Measured (2026-12-01): the geometry and the resize filter agree (greyscale: max 0.018, one
//! grey level); colour images differ by up to 3 levels in a channel (0.052 normalised, mean
//! 0.007) because the `image` crate's JPEG decoder (zune-jpeg) upsamples chroma otherwise than
//! PIL's libjpeg-turbo (decoded pixels differ by up to 4 levels; jpeg-decoder: 3). Issue 13's
//! target of 0.03 for colour needs libjpeg-turbo itself; the bounds below are the measured ones,
//! and a one-pixel crop offset (Rust's round vs Python's round half to even) gave 0.86.

use std::path::{Path, PathBuf};

use agml::data::{Transform, View, pipeline::decode};
use agml::eval::npy::{NpyValues, read_npy};

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pipeline")
        .join(name);
    assert!(
        path.exists(),
        "{}: generate the fixtures with `make fixtures`",
        path.display()
    );
    path
}

fn names() -> Vec<String> {
    let listing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("pipeline.json")).unwrap()).unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn decoding_and_the_test_transform_match_torchvision() {
    let transform = Transform::default();
    for name in names() {
        let path = fixture(&format!("{name}.jpg"));
        let NpyValues::Int(pil) = read_npy(&fixture(&format!("{name}-decoded.npy")))
            .unwrap()
            .values
        else {
            panic!("uint8 pixels")
        };
        let ours = decode(&path).unwrap();
        let decode_diff = ours
            .as_raw()
            .iter()
            .zip(&pil)
            .map(|(&a, &b)| (i64::from(a) - b).abs())
            .max()
            .unwrap();
        let NpyValues::Float(torch) = read_npy(&fixture(&format!("{name}-test.npy")))
            .unwrap()
            .values
        else {
            panic!("float32 tensor")
        };
        let got = transform.load(&path, View::Test).unwrap();
        assert_eq!(got.len(), torch.len(), "{name}");
        let diffs: Vec<f32> = got.iter().zip(&torch).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().copied().fold(0f32, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        eprintln!(
            "{name}: decode max {decode_diff} levels; test transform max {max:.4} mean {mean:.5}"
        );
        let grey = name == "grey";
        // One grey level is 1 / 255 / 0.224 = 0.0175 after normalisation.
        let (max_bound, mean_bound) = if grey { (0.02, 0.005) } else { (0.06, 0.01) };
        assert!(
            max <= max_bound && mean <= mean_bound,
            "{name}: max {max}, mean {mean}"
        );
        assert!(
            decode_diff <= if grey { 1 } else { 6 },
            "{name}: decoded pixels differ by {decode_diff}"
        );
    }
}
