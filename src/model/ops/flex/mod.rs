//! flex: agml's kernels where burn's composition of tensor operations is slow, burn's own
//! elsewhere.

mod batch_norm;
mod conv;
pub mod im2col;
mod scratch;

use burn::backend::Flex;

use super::relu::NativeRelu;

/// burn-flex's ReLU backward is one pass already.
impl NativeRelu for Flex {}
