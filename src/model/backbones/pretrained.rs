//! Pretrained backbones from PyTorch state dicts (`.pth` / `.pt`, e.g. torchvision's), read
//! with burn-store's PytorchStore. Names follow torchvision, so only ResNet's `downsample.0/1`
//! needs remapping; classifier and auxiliary-head tensors are ignored.

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
            m.load_from(&mut store()).map_err(fail)?;
            Backbone::BnInception(m)
        }
        Backbone::ConvnetSmall(mut m) => {
            m.load_from(&mut store()).map_err(fail)?;
            Backbone::ConvnetSmall(m)
        }
    })
}
