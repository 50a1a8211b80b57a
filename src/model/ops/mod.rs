//! The operations of a backbone that agml runs as burn backend extensions with backward passes
//! of their own, one kernel each way per backend where burn composes many: the convolution,
//! BatchNorm and ReLU. Each file holds one operation (its extension trait, autodiff wrapper and
//! checks); [`flex`] and [`tch`] hold the backends' kernels.
// burn marks its LibTorch backend deprecated; agml's tch backend is built on it.
#![cfg_attr(feature = "tch", allow(deprecated))]

pub mod batch_norm;
pub mod conv;
pub mod flex;
pub mod relu;
#[cfg(feature = "tch")]
mod tch;

pub use batch_norm::{batch_norm_batch_stats, batch_norm_fixed_stats};
pub use conv::conv2d;
pub use relu::relu;
#[cfg(feature = "tch")]
pub use tch::libtorch_build;

/// Every backend this build has, with autodiff: the devices the checks run on.
#[cfg(test)]
pub(crate) fn test_devices() -> Vec<burn::tensor::Device> {
    #[allow(unused_mut)]
    let mut devices = vec![burn::tensor::Device::flex().autodiff()];
    #[cfg(feature = "tch")]
    devices.push(burn::tensor::Device::libtorch().autodiff());
    devices
}
