//! flex: burn's forward convolution and input gradient, agml's weight gradient.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{Flex, tensor::FloatTensor};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, TensorData};

use super::weight_gradient::{ConvGeometry, weight_gradient};
use super::{ConvGradients, NativeConv};

impl NativeConv for Flex {}

impl ConvGradients for Flex {
    /// The input and the weight.
    type Saved = (FlexTensor, FlexTensor);

    fn conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: &ConvOptions<2>,
        _input_grad: bool,
    ) -> (FloatTensor<Self>, Self::Saved) {
        let output = Self::conv2d(x.clone(), weight.clone(), None, options.clone());
        (output, (x, weight))
    }

    fn conv2d_gradients(
        (x, weight): Self::Saved,
        output_grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        let dx = input_grad.then(|| {
            Self::conv2d_x_backward(
                x.clone(),
                weight.clone(),
                output_grad.clone(),
                options.clone(),
            )
        });
        (dx, weight_grad(x, weight, output_grad, options))
    }
}

/// `dL/dW` by [`weight_gradient`]; burn's own for what it does not cover (groups, asymmetric
/// padding, another float type).
fn weight_grad(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let Some(geometry) = geometry(&x.shape().dims(), &weight.shape().dims(), options)
        .filter(|_| x.dtype() == DType::F32 && output_grad.dtype() == DType::F32)
    else {
        return Flex::conv2d_weight_backward(x, weight, output_grad, options.clone());
    };
    let (x, grad) = (x.to_contiguous(), output_grad.to_contiguous());
    let dw = weight_gradient(
        &geometry,
        x.as_slice::<f32>().expect("contiguous f32"),
        grad.as_slice::<f32>().expect("contiguous f32"),
    );
    FlexTensor::from_data(TensorData::new(dw, weight.shape()))
}

/// The geometry of a convolution of `x` `[n, in, h, w]` with `weight` `[out, in, kh, kw]`;
/// `None` for what [`weight_gradient`] does not cover (groups, asymmetric padding).
fn geometry(x: &[usize; 4], weight: &[usize; 4], options: &ConvOptions<2>) -> Option<ConvGeometry> {
    let symmetric = options.padding.iter().all(|(begin, end)| begin == end);
    (options.groups == 1 && symmetric && x[1] == weight[1]).then(|| ConvGeometry {
        batch: x[0],
        in_channels: x[1],
        input: [x[2], x[3]],
        out_channels: weight[0],
        kernel: [weight[2], weight[3]],
        stride: options.stride,
        padding: options.padding.map(|(begin, _)| begin),
        dilation: options.dilation,
    })
}
