//! torchvision state dicts (and the standard BN-Inception one, pretrainedmodels' layout) load
//! into agml's backbones and give PyTorch's feature maps (eval mode, max abs diff <= 1e-4).
//!
//! The committed fixtures (tests/fixtures/make_backbone_fixtures.py, `make fixtures`) hold each
//! state dict's manifest and PyTorch's output, not the weights: both sides regenerate them from
//! their names (tests/common/seeded.rs, bit for bit: the manifest's sha256 says so), and the test
//! writes them as a `.pth` in PyTorch's zip format, so they load through the same reader and key
//! remapping as a user's file. `sample.pth`, written by torch.save itself, checks that this
//! reader sees PyTorch's own file and ours alike.

mod common;

use std::path::{Path, PathBuf};

use agml::error::is_bad_input;
use agml::model::backbones::pretrained::load_state_dict;
use agml::model::backbones::{Backbone, BackboneKind};
use agml::model::layers::ParamInit;
use burn::module::Module;
use burn::store::{ModuleStore, PytorchStore};
use burn::tensor::{Device, Tensor, TensorData};
use common::seeded::{self, Named};
use common::torch_save;

fn fixtures() -> PathBuf {
    common::repo("tests/fixtures/backbones")
}

fn meta(name: &str) -> serde_json::Value {
    let path = fixtures().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The fixture's state dict, regenerated and checked against the script's sha256.
fn weights(meta: &serde_json::Value) -> Vec<Named> {
    let weights = seeded::generate(meta["namespace"].as_str().unwrap(), &meta["manifest"]);
    assert_eq!(
        seeded::sha256(&weights),
        meta["weights_sha256"].as_str().unwrap(),
        "{}: the regenerated weights differ from the fixture script's (seeded.rs and seeded.py \
         disagree)",
        meta["backbone"]
    );
    weights
}

/// `weights` written as `<name>.pth` in a temporary folder (kept alive by the first value).
fn saved(name: &str, weights: &[Named]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.pth"));
    torch_save::save(&path, weights);
    (dir, path)
}

fn shape4(value: &serde_json::Value) -> [usize; 4] {
    let dims: Vec<usize> = serde_json::from_value(value.clone()).unwrap();
    dims.try_into().unwrap()
}

fn check(kind: BackboneKind) {
    let name = kind.to_string();
    let meta = meta(&name);
    let (_dir, pth) = saved(&name, &weights(&meta));
    let device = Device::default();
    let backbone = Backbone::new(kind, 3, true, &mut ParamInit::new(0, &device));
    let backbone = load_state_dict(backbone, &pth).unwrap().valid();
    let input = &meta["input"];
    let input_shape = shape4(&input["shape"]);
    let bound = |k: &str| input[k].as_f64().unwrap() as f32;
    let values = seeded::uniform(
        &format!("{}/input", meta["namespace"].as_str().unwrap()),
        input_shape.iter().product(),
        bound("low"),
        bound("high"),
    );
    let x = Tensor::<4>::from_data(TensorData::new(values, input_shape), &device);
    let y = backbone.forward(x);
    assert_eq!(y.dims(), shape4(&meta["output_shape"]), "{name}");
    let got = y.into_data().try_into_vec::<f32>().unwrap();
    let expected = common::read_f32(&fixtures().join(format!("{name}-output.f32")));
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

/// Every tensor of a `.pth` as the reader sees it: name, shape and bytes.
fn read_back(path: &Path, names: &[&str]) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut store = PytorchStore::from_file(path);
    names
        .iter()
        .map(|&name| {
            let t = (store.get_tensor(name).unwrap())
                .unwrap_or_else(|| panic!("{}: no {name}", path.display()));
            (
                name.to_string(),
                t.shape.to_vec(),
                t.to_bytes().unwrap().to_vec(),
            )
        })
        .collect()
}

/// torch.save's own file and the test's writer give the reader the same tensors, and those
/// are the regenerated values bit for bit.
#[test]
fn torch_saves_file_and_ours_read_alike() {
    let names = [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "fc.bias",
    ];
    let regenerated: Vec<Named> = (weights(&meta("resnet18")).into_iter())
        .filter(|t| names.contains(&t.name.as_str()))
        .collect();
    let (_dir, ours) = saved("sample", &regenerated);
    let torch = read_back(&fixtures().join("sample.pth"), &names);
    assert_eq!(torch, read_back(&ours, &names));
    for (t, (name, shape, bytes)) in regenerated.iter().zip(&torch) {
        assert_eq!((&t.name, &t.shape), (name, shape));
        assert!(t.values.le_bytes() == *bytes, "{name}: values differ");
    }
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
    let (_dir, resnet18) = saved("resnet18", &weights(&meta("resnet18")));
    let error = load_state_dict(resnet50, &resnet18).unwrap_err();
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
