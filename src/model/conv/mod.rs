//! 2-D convolution whose weight gradient agml computes itself ([`weight_gradient`]), as a
//! burn backend extension with its own backward pass: the forward pass and the input gradient
//! are burn's, the weight gradient is one matrix product per image instead of burn's
//! swapped-axes convolution (the slow part of a ResNet step on a CPU).
// burn marks its LibTorch backend deprecated; agml's tch backend is built on it.
#![cfg_attr(feature = "tch", allow(deprecated))]

pub mod weight_gradient;

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};

use weight_gradient::ConvGeometry;

/// A bias-free 2-D convolution: `[n, in, h, w]` conv `[out, in, kh, kw]` -> `[n, out, ho, wo]`.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as NativeConv>::conv2d_native(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ))
}

/// The convolution as an extension operation: backends run burn's forward convolution, and
/// the autodiff wrapper records [`ConvBackward`] instead of burn's backward.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait NativeConv: Backend {
    fn conv2d_native(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }
}

/// How a backend computes the weight gradient of [`NativeConv::conv2d_native`].
pub trait ConvWeightGradient: Backend {
    /// `dL/dW` `[out, in, kh, kw]` from the input, the weight and `dL/dy`.
    fn conv2d_weight_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl NativeConv for Flex {}

impl ConvWeightGradient for Flex {
    fn conv2d_weight_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let Some(geometry) = geometry(&x.shape().dims(), &weight.shape().dims(), &options)
            .filter(|_| x.dtype() == DType::F32 && output_grad.dtype() == DType::F32)
        else {
            // Groups, asymmetric padding or another float type: burn's own gradient.
            return Self::conv2d_weight_backward(x, weight, output_grad, options);
        };
        let (x, grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let dw = weight_gradient::weight_gradient(
            &geometry,
            x.as_slice::<f32>().expect("contiguous f32"),
            grad.as_slice::<f32>().expect("contiguous f32"),
        );
        burn::backend::flex::FlexTensor::from_data(TensorData::new(dw, weight.shape()))
    }
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

#[cfg(feature = "tch")]
impl NativeConv for burn::backend::LibTorch {}

/// libtorch: burn-tch's weight gradient for now (its native one is not bound by the tch crate).
#[cfg(feature = "tch")]
impl ConvWeightGradient for burn::backend::LibTorch {
    fn conv2d_weight_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// The backward pass: burn's input gradient, the backend's [`ConvWeightGradient`].
#[derive(Debug)]
struct ConvBackward;

impl<B: Backend + ConvWeightGradient> Backward<B, 2> for ConvBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let dw = B::conv2d_weight_gradient(x, weight, grad, options);
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B, C> NativeConv for Autodiff<B, C>
where
    B: NativeConv + ConvWeightGradient,
    C: CheckpointStrategy,
{
    fn conv2d_native(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    B::conv2d_native(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_native(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Value, input gradient and weight gradient of `sum(conv(x, w) * r)` through `conv`.
    fn through(
        conv: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
        x: &Tensor<4>,
        w: &Tensor<4>,
        r: &Tensor<4>,
    ) -> [Vec<f32>; 3] {
        let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
        let y = conv(x.clone(), w.clone());
        let grads = (y.clone() * r.clone()).sum().backward();
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        [
            values(y),
            values(x.grad(&grads).expect("input gradient")),
            values(w.grad(&grads).expect("weight gradient")),
        ]
    }

    #[test]
    fn gradients_equal_burns_for_every_backbone_shape() {
        let device = Device::default().autodiff();
        // (in, out, side, kernel, stride): 1x1 stride 1 and 2, 3x3 stride 1 and 2, 5x5, 7x7
        // stride 2 (the ResNet stem).
        for (cin, cout, side, kernel, stride) in [
            (16, 8, 9, 1, 1),
            (16, 8, 9, 1, 2),
            (6, 5, 11, 3, 1),
            (6, 5, 11, 3, 2),
            (4, 6, 10, 5, 1),
            (3, 8, 23, 7, 2),
        ] {
            let options = ConvOptions::new([stride; 2], [kernel / 2; 2], [1, 1], 1);
            let x = Tensor::<4>::random(
                [2, cin, side, side],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let w = Tensor::<4>::random(
                [cout, cin, kernel, kernel],
                Distribution::Normal(0.0, 0.3),
                &device,
            );
            let y_dims =
                burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone()).dims();
            let r = Tensor::<4>::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
            let ours = through(|x, w| conv2d(x, w, options.clone()), &x, &w, &r);
            let burns = through(
                |x, w| burn::tensor::module::conv2d(x, w, None, options.clone()),
                &x,
                &w,
                &r,
            );
            for (what, (a, b)) in ["output", "input gradient", "weight gradient"]
                .iter()
                .zip(ours.iter().zip(&burns))
            {
                let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(
                    worst <= 1e-4 * scale,
                    "{cin}->{cout} {kernel}x{kernel} stride {stride}: {what} differs by {worst} (scale {scale})"
                );
            }
        }
    }
}
