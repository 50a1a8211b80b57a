//! Backends, chosen at run time among those compiled in.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::BadInput;

/// A compute backend (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// libtorch (CPU or CUDA), with the `tch` cargo feature.
    Tch,
}

impl FromStr for Backend {
    type Err = BadInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flex" => Ok(Backend::Flex),
            "tch" => Ok(Backend::Tch),
            other => Err(BadInput::new(format!(
                "--backend {other}: unknown backend (known: flex, tch)"
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Flex => "flex",
            Backend::Tch => "tch",
        })
    }
}

impl Backend {
    /// The CPU device of this backend, or bad input when it was not compiled in.
    pub fn device(self) -> Result<Device, BadInput> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            // burn marks burn-tch deprecated in favour of CubeCL backends, which do not build
            // offline here (DESIGN.md); libtorch stays our fast CPU and CUDA path for now.
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Backend::Tch => Ok(Device::libtorch()),
            #[allow(unreachable_patterns)]
            other => Err(BadInput::new(format!(
                "--backend {other}: this agml was built without the `{other}` cargo feature"
            ))),
        }
    }

    /// The device named `name`: `cpu`, or `cuda:N` (tch only).
    pub fn device_named(self, name: &str) -> Result<Device, BadInput> {
        if name == "cpu" {
            return self.device();
        }
        let Some(index) = name
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
        else {
            return Err(BadInput::new(format!(
                "--devices {name}: not a device (cpu or cuda:N)"
            )));
        };
        match self {
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Backend::Tch => Ok(Device::libtorch_cuda(index)),
            _ => Err(BadInput::new(format!(
                "--devices cuda:{index}: GPUs need --backend tch (and an agml built with the `tch` feature)"
            ))),
        }
    }
}
