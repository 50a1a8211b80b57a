//! The convolution: burn-tch's forward pass, libtorch's `convolution_backward`.

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;

use super::{agml_conv2d_backward, outputs};
use crate::model::ops::conv::{ConvGradients, NativeConv};

impl NativeConv for LibTorch {}

impl ConvGradients for LibTorch {
    fn conv2d_gradients(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        if options.padding.iter().any(|(begin, end)| begin != end) {
            // libtorch pads symmetrically (agml's layers never pad asymmetrically).
            return Self::burns_conv2d_gradients(x, weight, output_grad, options, input_grad);
        }
        let int = |values: [usize; 2]| values.map(|v| v as i64);
        let (stride, dilation) = (int(options.stride), int(options.dilation));
        let padding = int(options.padding.map(|(begin, _)| begin));
        let [dx, dw] = outputs("convolution backward", |[dx, dw]| unsafe {
            agml_conv2d_backward(
                output_grad.tensor.as_ptr(),
                x.tensor.as_ptr(),
                weight.tensor.as_ptr(),
                stride.as_ptr(),
                padding.as_ptr(),
                dilation.as_ptr(),
                options.groups as i64,
                input_grad.into(),
                dx,
                dw,
            )
        });
        (
            dx.map(TchTensor::new),
            TchTensor::new(dw.expect("a weight gradient")),
        )
    }
}
