//! flex: agml's convolution ([`super::im2col`]: several images per matrix product) forward
//! and backward; burn's for what it does not cover.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{Flex, tensor::FloatTensor};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};

use super::im2col::{self, ConvGeometry};
use crate::model::ops::conv::{ConvGradients, NativeConv};

impl NativeConv for Flex {
    fn conv2d_native(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let Some(geometry) = geometry(&x, &weight, &options) else {
            return Self::conv2d(x, weight, None, options);
        };
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let y = im2col::forward(&geometry, f32s(&x), f32s(&weight));
        let [ho, wo] = geometry.output();
        tensor(y, [geometry.batch, geometry.out_channels, ho, wo])
    }
}

impl ConvGradients for Flex {
    fn conv2d_gradients(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        let Some(geometry) = geometry(&x, &weight, options) else {
            return Self::burns_conv2d_gradients(x, weight, output_grad, options, input_grad);
        };
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let grad = output_grad.to_contiguous();
        let (dx, dw) =
            im2col::backward(&geometry, f32s(&x), f32s(&weight), f32s(&grad), input_grad);
        (
            dx.map(|dx| tensor(dx, x.shape())),
            tensor(dw, weight.shape()),
        )
    }
}

fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("contiguous f32")
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The geometry of a convolution of `x` `[n, in, h, w]` with `weight` `[out, in, kh, kw]`;
/// `None` for what [`im2col`] does not cover (groups, asymmetric padding, another float type).
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<ConvGeometry> {
    let (xd, wd) = (x.shape().dims::<4>(), weight.shape().dims::<4>());
    let symmetric = options.padding.iter().all(|(begin, end)| begin == end);
    let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    (options.groups == 1 && symmetric && f32s && xd[1] == wd[1]).then(|| ConvGeometry {
        batch: xd[0],
        in_channels: xd[1],
        input: [xd[2], xd[3]],
        out_channels: wd[0],
        kernel: [wd[2], wd[3]],
        stride: options.stride,
        padding: options.padding.map(|(begin, _)| begin),
        dilation: options.dilation,
    })
}
