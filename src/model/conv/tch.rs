//! tch: the forward convolution runs under libtorch's autograd, and the backward pass asks
//! libtorch for the gradients of that graph, so libtorch's own convolution backward computes
//! them (oneDNN on a CPU, cuDNN on a GPU). The tch crate binds no `convolution_backward`;
//! recomputing the forward convolution inside the backward pass would cost more than the
//! formulation it replaces, so the graph of the forward pass is kept instead.

use std::sync::{Arc, Mutex};

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;

use super::{ConvGradients, NativeConv};

impl NativeConv for LibTorch {}

/// The forward convolution's libtorch graph: its output and its leaves.
#[derive(Debug)]
pub struct Graph {
    output: tch::Tensor,
    /// Present when the input's gradient is wanted.
    input: Option<tch::Tensor>,
    weight: tch::Tensor,
}

/// A [`Graph`] the backward pass takes once (libtorch tensors are not `Sync`, so they sit
/// behind a mutex to be shared).
#[derive(Debug, Clone)]
pub struct SavedGraph(Arc<Mutex<Option<Graph>>>);

impl ConvGradients for LibTorch {
    type Saved = SavedGraph;

    fn conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (FloatTensor<Self>, Self::Saved) {
        let input = x.tensor.detach().set_requires_grad(input_grad);
        let leaf_weight = weight.tensor.detach().set_requires_grad(true);
        let int = |values: [usize; 2]| values.map(|v| v as i64);
        let output = input.conv2d(
            &leaf_weight,
            None::<tch::Tensor>,
            int(options.stride),
            int(options.padding.map(|(begin, _)| begin)),
            int(options.dilation),
            options.groups as i64,
        );
        let graph = Graph {
            output: output.shallow_clone(),
            input: input_grad.then_some(input),
            weight: leaf_weight,
        };
        (
            TchTensor::new(output.detach()),
            SavedGraph(Arc::new(Mutex::new(Some(graph)))),
        )
    }

    fn conv2d_gradients(
        saved: Self::Saved,
        output_grad: FloatTensor<Self>,
        _options: &ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        let graph = saved
            .0
            .lock()
            .expect("convolution graph")
            .take()
            .expect("a convolution's backward pass runs once");
        // d/d(leaves) of sum(y * dL/dy): libtorch back-propagates dL/dy through its graph.
        let root = (&graph.output * &output_grad.tensor).sum(graph.output.kind());
        let mut leaves = vec![&graph.weight];
        if let (true, Some(input)) = (input_grad, &graph.input) {
            leaves.push(input);
        }
        let mut gradients = tch::Tensor::run_backward(&[root], &leaves, false, false).into_iter();
        let dw = gradients.next().expect("weight gradient");
        let dx = gradients.next().map(TchTensor::new);
        (dx, TchTensor::new(dw))
    }
}
