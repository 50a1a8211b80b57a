//! torchvision state dicts (and the standard BN-Inception one, pretrainedmodels' layout) load
//! into agml's backbones and give PyTorch's feature maps (eval mode, max abs diff <= 1e-4). The fixtures are generated, not committed:
//! `make fixtures` runs tests/fixtures/make_backbone_fixtures.py (torch, torchvision, pretrainedmodels).

use std::path::{Path, PathBuf};

use agml::error::is_bad_input;
use agml::model::backbones::pretrained::load_state_dict;
use agml::model::backbones::{Backbone, BackboneKind};
use agml::model::layers::ParamInit;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate the fixtures with `make fixtures`",
            path.display()
        )
    });
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn shape(meta: &serde_json::Value, key: &str) -> [usize; 4] {
    let dims: Vec<usize> = serde_json::from_value(meta[key].clone()).unwrap();
    [dims[0], dims[1], dims[2], dims[3]]
}

fn check(kind: BackboneKind) {
    let name = kind.to_string();
    let dir = fixtures();
    let meta_path = dir.join(format!("{name}.json"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate the fixtures with `make fixtures`",
                meta_path.display()
            )
        }))
        .unwrap();
    let device = Device::default();
    let backbone = Backbone::new(kind, 3, true, &mut ParamInit::new(0, &device));
    let backbone = load_state_dict(backbone, &dir.join(format!("{name}.pth"))).unwrap();
    let backbone = backbone.valid();
    let input = read_f32(&dir.join(format!("{name}-input.f32")));
    let expected = read_f32(&dir.join(format!("{name}-output.f32")));
    let x = Tensor::<4>::from_data(TensorData::new(input, shape(&meta, "input_shape")), &device);
    let y = backbone.forward(x);
    assert_eq!(y.dims(), shape(&meta, "output_shape"), "{name}");
    let got = y.into_data().try_into_vec::<f32>().unwrap();
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("{name}: max abs diff {diff:e} (outputs up to {scale})");
    assert!(diff <= 1e-4, "{name}: max abs diff {diff} > 1e-4");
}

#[test]
fn resnet18_matches_torchvision() {
    check(BackboneKind::Resnet18);
}

#[test]
fn resnet50_matches_torchvision() {
    check(BackboneKind::Resnet50);
}

#[test]
fn googlenet_matches_torchvision() {
    check(BackboneKind::Googlenet);
}

/// pretrainedmodels' BNInception (the layout of the standard bn_inception-52deb4733.pth).
#[test]
fn bninception_matches_pretrainedmodels() {
    check(BackboneKind::Bninception);
}

#[test]
fn a_mismatched_state_dict_is_bad_input_naming_the_keys() {
    let device = Device::default();
    let resnet50 = Backbone::new(
        BackboneKind::Resnet50,
        3,
        true,
        &mut ParamInit::new(0, &device),
    );
    let error = load_state_dict(resnet50, &fixtures().join("resnet18.pth")).unwrap_err();
    assert!(is_bad_input(&error));
    let message = format!("{error:#}");
    assert!(message.contains("resnet18.pth"), "{message}");
    assert!(
        message.contains("layer1.0.conv3") || message.contains("layer1.0.conv1.weight"),
        "{message}"
    );

    let missing = Backbone::new(
        BackboneKind::Resnet18,
        3,
        true,
        &mut ParamInit::new(0, &device),
    );
    let error = load_state_dict(missing, &fixtures().join("nowhere.pth")).unwrap_err();
    assert!(is_bad_input(&error) && format!("{error}").contains("nowhere.pth"));
}
