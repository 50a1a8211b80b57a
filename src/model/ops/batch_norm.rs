//! BatchNorm as one operation with its own backward pass, both ways a backbone runs it: with
//! the batch's statistics (training) and with fixed ones (frozen statistics: the authors'
//! recipe, and every forward pass without gradients). burn composes it of element-wise
//! tensor operations, a dozen passes over the activation forward and back; here each backend
//! runs one kernel each way (flex: agml's, [`super::flex`]; tch: libtorch's `native_batch_norm`
//! and its backward, as PyTorch's autograd does).

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// `(output, mean, biased variance)` of BatchNorm with the statistics of the batch `x`
/// `[n, c, h, w]`; gamma, beta, mean and variance are `[c]`.
pub fn batch_norm_batch_stats(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let (output, mean, variance) = <Dispatch as NativeBatchNorm>::batch_norm_batch_stats(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(output),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(variance),
    )
}

/// BatchNorm of `x` `[n, c, h, w]` with fixed statistics (no gradient flows into them).
pub fn batch_norm_fixed_stats(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f64,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as NativeBatchNorm>::batch_norm_fixed_stats(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        variance.into_dispatch(),
        epsilon,
    ))
}

/// The two BatchNorm operations as an extension: backends run their forward kernels, and the
/// autodiff wrapper records [`BatchNormBackward`].
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait NativeBatchNorm: Backend {
    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let result = Self::batch_norm_train(x, gamma, beta, epsilon);
        (result.output, result.mean, result.variance)
    }

    fn batch_norm_fixed_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::batch_norm(x, gamma, beta, mean, variance, epsilon)
    }
}

/// How a backend runs BatchNorm when gradients are wanted, and its backward pass.
pub trait BatchNormGradients: Backend {
    /// What the forward pass keeps for the backward pass.
    type Saved: Clone + Send + std::fmt::Debug + 'static;

    /// Output, batch mean, biased batch variance and what the backward pass needs.
    fn batch_stats_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        Self::Saved,
    );

    /// Output and what the backward pass needs.
    fn fixed_stats_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, Self::Saved);

    /// `dL/dx` (when `input_grad`), `dL/dgamma` and `dL/dbeta` from what the forward pass
    /// kept and `dL/dy`.
    fn batch_norm_gradients(
        saved: Self::Saved,
        output_grad: FloatTensor<Self>,
        input_grad: bool,
    ) -> (
        Option<FloatTensor<Self>>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// The backward pass of both operations: the backend's [`BatchNormGradients`].
#[derive(Debug)]
struct BatchNormBackward;

impl<B: BatchNormGradients> Backward<B, 3> for BatchNormBackward {
    type State = B::Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (dx, dgamma, dbeta) = B::batch_norm_gradients(ops.state, grad, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

impl<B, C> NativeBatchNorm for Autodiff<B, C>
where
    B: NativeBatchNorm + BatchNormGradients,
    C: CheckpointStrategy,
{
    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, mean, variance, saved) = B::batch_stats_saving(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let output = prep.finish(saved, output);
                (
                    output,
                    <Self as AutodiffBackend>::from_inner(mean),
                    <Self as AutodiffBackend>::from_inner(variance),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (output, mean, variance) = B::batch_norm_batch_stats(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let output = prep.finish(output);
                (
                    output,
                    <Self as AutodiffBackend>::from_inner(mean),
                    <Self as AutodiffBackend>::from_inner(variance),
                )
            }
        }
    }

    fn batch_norm_fixed_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        // The statistics are constants of the graph: running statistics are never trained.
        let (mean, variance) = (mean.into_primitive(), variance.into_primitive());
        match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, saved) = B::fixed_stats_saving(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    mean,
                    variance,
                    epsilon,
                );
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::batch_norm_fixed_stats(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                mean,
                variance,
                epsilon,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The tensors of one check: input, gamma, beta, running mean and variance, and the
    /// weights r of the loss `sum(bn(x) * r)`.
    struct Case {
        x: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        mean: Tensor<1>,
        variance: Tensor<1>,
        r: Tensor<4>,
    }

    impl Case {
        fn new(dims: [usize; 4], location: f64, device: &Device) -> Self {
            let normal = |shape: [usize; 1], mean, std| {
                Tensor::<1>::random(shape, Distribution::Normal(mean, std), device)
            };
            let c = [dims[1]];
            Self {
                x: Tensor::random(dims, Distribution::Normal(location, 2.0), device),
                gamma: normal(c, 1.0, 0.3),
                beta: normal(c, 0.0, 0.3),
                mean: normal(c, location, 1.0),
                variance: normal(c, 0.0, 1.0).abs() + 0.5,
                r: Tensor::random(dims, Distribution::Normal(0.0, 1.0), device),
            }
        }

        /// Output, the statistics it returns, and the gradients of the loss with respect to
        /// x, gamma and beta, through `bn`.
        fn through(
            &self,
            bn: impl Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> (Tensor<4>, Vec<Tensor<1>>),
        ) -> Vec<(&'static str, Vec<f32>)> {
            let x = self.x.clone().require_grad();
            let gamma = self.gamma.clone().require_grad();
            let beta = self.beta.clone().require_grad();
            let (y, statistics) = bn(x.clone(), gamma.clone(), beta.clone());
            let grads = (y.clone() * self.r.clone()).sum().backward();
            let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let values1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            let mut all = vec![
                ("output", values(y)),
                ("x gradient", values(x.grad(&grads).expect("x gradient"))),
                (
                    "gamma gradient",
                    values1(gamma.grad(&grads).expect("gamma gradient")),
                ),
                (
                    "beta gradient",
                    values1(beta.grad(&grads).expect("beta gradient")),
                ),
            ];
            all.extend(
                statistics
                    .into_iter()
                    .zip(["mean", "variance"])
                    .map(|(t, what)| (what, values1(t))),
            );
            all
        }
    }

    fn assert_close(
        device: &Device,
        dims: [usize; 4],
        ours: &[(&str, Vec<f32>)],
        burns: &[(&str, Vec<f32>)],
    ) {
        assert_eq!(ours.len(), burns.len());
        for ((what, a), (_, b)) in ours.iter().zip(burns) {
            let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{device:?} {dims:?}: {what} differs from burn's by {worst} (scale {scale})"
            );
        }
    }

    /// Shapes of every kind the backbones have (wide planes, 1x1 planes, a plane shorter than
    /// eight lanes), with a mean far from zero.
    const SHAPES: [([usize; 4], f64); 4] = [
        ([4, 3, 9, 9], 0.0),
        ([3, 5, 2, 3], 1.0),
        ([5, 4, 1, 1], -2.0),
        ([2, 3, 6, 7], 100.0),
    ];

    #[test]
    fn batch_statistics_equal_burns_with_gradients() {
        for device in crate::model::ops::test_devices() {
            for (dims, location) in SHAPES {
                let case = Case::new(dims, location, &device);
                let ours = case.through(|x, gamma, beta| {
                    let (y, mean, variance) = batch_norm_batch_stats(x, gamma, beta, 1e-5);
                    (y, vec![mean, variance])
                });
                let burns = case.through(|x, gamma, beta| {
                    let result = burn::tensor::module::batch_norm_train(x, gamma, beta, 1e-5);
                    (result.output, vec![result.mean, result.variance])
                });
                assert_close(&device, dims, &ours, &burns);
            }
        }
    }

    #[test]
    fn fixed_statistics_equal_burns_with_gradients() {
        for device in crate::model::ops::test_devices() {
            for (dims, location) in SHAPES {
                let case = Case::new(dims, location, &device);
                let (mean, variance) = (case.mean.clone(), case.variance.clone());
                let ours = case.through(|x, gamma, beta| {
                    let y = batch_norm_fixed_stats(
                        x,
                        gamma,
                        beta,
                        mean.clone(),
                        variance.clone(),
                        1e-3,
                    );
                    (y, vec![])
                });
                let burns = case.through(|x, gamma, beta| {
                    let y = burn::tensor::module::batch_norm(
                        x,
                        gamma,
                        beta,
                        mean.clone(),
                        variance.clone(),
                        1e-3,
                    );
                    (y, vec![])
                });
                assert_close(&device, dims, &ours, &burns);
            }
        }
    }
}
