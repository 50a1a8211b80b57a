//! ReLU: burn-tch's forward pass, libtorch's `threshold_backward`.

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;

use super::{agml_relu_backward, outputs};
use crate::model::ops::relu::NativeRelu;

impl NativeRelu for LibTorch {
    fn relu_native_backward(
        output: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [dx] = outputs("ReLU backward", |[dx]| unsafe {
            agml_relu_backward(output_grad.tensor.as_ptr(), output.tensor.as_ptr(), dx)
        });
        TchTensor::new(dx.expect("an input gradient"))
    }
}
