//! 2-D convolution with its own backward pass, because burn computes every weight gradient as
//! a convolution of the input with the output gradient (batch and channels swapped, the stride
//! as dilation), the slow part of a ResNet step:
//! - flex: agml's convolution forward and backward, matrix products over the patch matrices
//!   of several images at once ([`super::flex::im2col`]);
//! - tch: libtorch's `convolution_backward` (oneDNN on a CPU, cuDNN on a GPU).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// A bias-free 2-D convolution: `[n, in, h, w]` conv `[out, in, kh, kw]` -> `[n, out, ho, wo]`.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as NativeConv>::conv2d_native(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ))
}

/// The convolution as an extension operation: backends run their forward convolution, and
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

/// A backend's backward pass of the convolution.
pub trait ConvGradients: Backend {
    /// `dL/dx` (when `input_grad`) and `dL/dW` from the forward pass's input and weight and
    /// `dL/dy`.
    fn conv2d_gradients(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>);

    /// burn's own gradients, for what a backend's kernels do not cover.
    fn burns_conv2d_gradients(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
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
        (
            dx,
            Self::conv2d_weight_backward(x, weight, output_grad, options.clone()),
        )
    }
}

/// The backward pass: the backend's [`ConvGradients`].
#[derive(Debug)]
struct ConvBackward;

impl<B: ConvGradients> Backward<B, 2> for ConvBackward {
    /// The input, the weight and the options.
    type State = (FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, options) = ops.state;
        let (dx, dw) = B::conv2d_gradients(x, weight, grad, &options, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B, C> NativeConv for Autodiff<B, C>
where
    B: NativeConv + ConvGradients,
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
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let output = B::conv2d_native(x.clone(), weight.clone(), options.clone());
                prep.finish((x, weight, options), output)
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
        for device in crate::model::ops::test_devices() {
            gradients_equal_burns_on(&device);
        }
    }

    fn gradients_equal_burns_on(device: &Device) {
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
            let x =
                Tensor::<4>::random([2, cin, side, side], Distribution::Normal(0.0, 1.0), device);
            let w = Tensor::<4>::random(
                [cout, cin, kernel, kernel],
                Distribution::Normal(0.0, 0.3),
                device,
            );
            let y_dims =
                burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone()).dims();
            let r = Tensor::<4>::random(y_dims, Distribution::Normal(0.0, 1.0), device);
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
                    "{device:?} {cin}->{cout} {kernel}x{kernel} stride {stride}: {what} differs by {worst} (scale {scale})"
                );
            }
        }
    }
}
