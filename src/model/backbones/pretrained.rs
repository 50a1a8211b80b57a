//! Pretrained backbones from PyTorch state dicts (`.pth` / `.pt`, e.g. torchvision's), read
//! with burn-store's PytorchStore. Names follow torchvision, so only ResNet's `downsample.0/1`
//! needs remapping; BN-Inception reads the standard state dict (Cadene's pretrainedmodels,
//! `bn_inception-52deb4733.pth`: flat names such as `inception_3a_double_3x3_1_bn.weight`),
//! mapped by [`bn_inception_remapping`]. Classifier and auxiliary-head tensors are ignored.

use std::path::Path;

use burn::store::{ModuleSnapshot, PytorchStore};

use super::Backbone;
use crate::error::BadInput;

/// `backbone` with its parameters loaded from the state dict at `path`. A missing file, a
/// missing tensor or a shape mismatch is bad input that lists the keys at fault.
pub fn load_state_dict(backbone: Backbone, path: &Path) -> anyhow::Result<Backbone> {
    if !path.is_file() {
        return Err(
            BadInput::new(format!("{}: pretrained weights not found", path.display())).into(),
        );
    }
    let store = || PytorchStore::from_file(path);
    let fail = |error: burn::store::PytorchStoreError| -> anyhow::Error {
        BadInput::new(format!(
            "{}: cannot load into the backbone: {error}",
            path.display()
        ))
        .into()
    };
    Ok(match backbone {
        Backbone::ResNet(mut m) => {
            let mut store = store()
                .with_key_remapping(r"\.downsample\.0\.", ".downsample.conv.")
                .with_key_remapping(r"\.downsample\.1\.", ".downsample.bn.");
            m.load_from(&mut store).map_err(fail)?;
            Backbone::ResNet(m)
        }
        Backbone::GoogLeNet(mut m) => {
            // torchvision's pooling branch is Sequential(MaxPool2d, BasicConv2d): the conv is its
            // second item (index 1, or 0 once burn-store renumbers parameterless items away).
            let mut store = store().with_key_remapping(r"\.branch4\.\d+\.", ".branch4.");
            m.load_from(&mut store).map_err(fail)?;
            Backbone::GoogLeNet(m)
        }
        Backbone::BnInception(mut m) => {
            let mut store = store();
            for (pattern, replacement) in bn_inception_remapping() {
                store = store.with_key_remapping(&pattern, &replacement);
            }
            m.load_from(&mut store).map_err(fail)?;
            Backbone::BnInception(m)
        }
        Backbone::ConvnetSmall(mut m) => {
            m.load_from(&mut store()).map_err(fail)?;
            Backbone::ConvnetSmall(m)
        }
    })
}

/// The blocks of BN-Inception in order (agml's `blocks.<i>`).
const BN_INCEPTION_BLOCKS: [&str; 10] =
    ["3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b"];

/// Each layer of an inception block in the standard state dict, and agml's branch for it;
/// longer names first, as they are matched in order.
const BN_INCEPTION_BRANCHES: [(&str, &str); 7] = [
    ("double_3x3_reduce", "branch3.0"),
    ("double_3x3_1", "branch3.1"),
    ("double_3x3_2", "branch3.2"),
    ("3x3_reduce", "branch2.0"),
    ("3x3", "branch2.1"),
    ("1x1", "branch1"),
    ("pool_proj", "branch4"),
];

/// (regex, replacement) pairs, applied in order, from the standard BN-Inception state dict's
/// names to agml's: `conv1_7x7_s2` -> `conv1.conv`, `conv1_7x7_s2_bn` -> `conv1.bn`,
/// `inception_4e_double_3x3_1_bn` -> `blocks.7.branch3.1.bn`, ...
pub fn bn_inception_remapping() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (name, ours) in [
        ("conv1_7x7_s2", "conv1"),
        ("conv2_3x3_reduce", "conv2_reduce"),
        ("conv2_3x3", "conv2"),
    ] {
        pairs.push((format!(r"^{name}_bn\."), format!("{ours}.bn.")));
        pairs.push((format!(r"^{name}\."), format!("{ours}.conv.")));
    }
    for (i, block) in BN_INCEPTION_BLOCKS.iter().enumerate() {
        pairs.push((format!(r"^inception_{block}_"), format!("blocks.{i}.")));
    }
    for (layer, branch) in BN_INCEPTION_BRANCHES {
        pairs.push((
            format!(r"^(blocks\.\d+)\.{layer}_bn\."),
            format!("${{1}}.{branch}.bn."),
        ));
        pairs.push((
            format!(r"^(blocks\.\d+)\.{layer}\."),
            format!("${{1}}.{branch}.conv."),
        ));
    }
    pairs
}
