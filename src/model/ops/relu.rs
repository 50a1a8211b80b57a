//! ReLU with a one-kernel backward pass on every backend: burn's autodiff computes it as a
//! comparison into a boolean mask and a masked fill, which libtorch runs element by element;
//! tch runs libtorch's `threshold_backward` (PyTorch's own), flex its `relu_backward`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// `max(x, 0)`.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as NativeRelu>::relu_native(x.into_dispatch()))
}

#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait NativeRelu: Backend {
    fn relu_native(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }

    /// `dL/dx` from the output `y` and `dL/dy`.
    fn relu_native_backward(
        output: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::relu_backward(output, output_grad)
    }
}

#[derive(Debug)]
struct ReluBackward;

impl<B: NativeRelu> Backward<B, 1> for ReluBackward {
    /// The output.
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::relu_native_backward(ops.state, grad));
        }
    }
}

impl<B: NativeRelu, C: CheckpointStrategy> NativeRelu for Autodiff<B, C> {
    fn relu_native(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::relu_native(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu_native(x.into_primitive())),
        }
    }

    fn relu_native_backward(
        _output: FloatTensor<Self>,
        _output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        panic!("the ReLU's backward pass is not differentiated again")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn output_and_gradient_equal_burns() {
        for device in crate::model::ops::test_devices() {
            let x = Tensor::<3>::random([3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
            // Exact zeros: the gradient there is 0, as in burn and PyTorch.
            let x = x.clone().mask_fill(x.clone().abs().lower_elem(0.2), 0.0);
            let r = Tensor::<3>::random([3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
            let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                let x = x.clone().require_grad();
                let y = f(x.clone());
                let grads = (y.clone() * r.clone()).sum().backward();
                let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
                (values(y), values(x.grad(&grads).expect("gradient")))
            };
            assert_eq!(
                run(&relu),
                run(&burn::tensor::activation::relu),
                "{device:?}"
            );
        }
    }
}
