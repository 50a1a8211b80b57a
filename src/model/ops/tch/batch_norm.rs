//! BatchNorm: libtorch's `native_batch_norm` forward and `native_batch_norm_backward`.

use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;

use super::{agml_batch_norm_backward, optional, outputs};
use crate::model::ops::batch_norm::{BatchNormGradients, NativeBatchNorm};

/// What the backward pass reads.
#[derive(Debug, Clone)]
pub struct Saved {
    x: TchTensor,
    gamma: TchTensor,
    /// With the batch's statistics: libtorch's saved mean and inverse standard deviation;
    /// with fixed ones: the mean and variance.
    statistics: (TchTensor, TchTensor),
    batch_stats: bool,
    epsilon: f64,
}

/// `(output, mean, inverse standard deviation)` with the batch's statistics.
fn batch_stats(
    x: &TchTensor,
    gamma: &TchTensor,
    beta: &TchTensor,
    epsilon: f64,
) -> [tch::Tensor; 3] {
    let (output, mean, invstd) = x.tensor.native_batch_norm(
        Some(&gamma.tensor),
        Some(&beta.tensor),
        None,
        None,
        true,
        0.0,
        epsilon,
    );
    [output, mean, invstd]
}

/// The biased variance behind libtorch's saved inverse standard deviation (in f64: the
/// subtraction of epsilon loses nothing a float variance holds).
fn variance(invstd: &tch::Tensor, epsilon: f64) -> tch::Tensor {
    (invstd.to_kind(tch::Kind::Double).pow_tensor_scalar(-2) - epsilon).to_kind(invstd.kind())
}

fn fixed_stats(
    x: &TchTensor,
    gamma: &TchTensor,
    beta: &TchTensor,
    mean: &TchTensor,
    variance: &TchTensor,
    epsilon: f64,
) -> tch::Tensor {
    let (output, _, _) = x.tensor.native_batch_norm(
        Some(&gamma.tensor),
        Some(&beta.tensor),
        Some(&mean.tensor),
        Some(&variance.tensor),
        false,
        0.0,
        epsilon,
    );
    output
}

impl NativeBatchNorm for LibTorch {
    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [output, mean, invstd] = batch_stats(&x, &gamma, &beta, epsilon);
        let variance = variance(&invstd, epsilon);
        (
            TchTensor::new(output),
            TchTensor::new(mean),
            TchTensor::new(variance),
        )
    }

    fn batch_norm_fixed_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        TchTensor::new(fixed_stats(&x, &gamma, &beta, &mean, &variance, epsilon))
    }
}

impl BatchNormGradients for LibTorch {
    type Saved = Saved;

    fn batch_stats_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        Saved,
    ) {
        let [output, mean, invstd] = batch_stats(&x, &gamma, &beta, epsilon);
        let variance = TchTensor::new(variance(&invstd, epsilon));
        let (mean, invstd) = (TchTensor::new(mean), TchTensor::new(invstd));
        let saved = Saved {
            x,
            gamma,
            statistics: (mean.clone(), invstd),
            batch_stats: true,
            epsilon,
        };
        (TchTensor::new(output), mean, variance, saved)
    }

    fn fixed_stats_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, Saved) {
        let output = fixed_stats(&x, &gamma, &beta, &mean, &variance, epsilon);
        let saved = Saved {
            x,
            gamma,
            statistics: (mean, variance),
            batch_stats: false,
            epsilon,
        };
        (TchTensor::new(output), saved)
    }

    fn batch_norm_gradients(
        saved: Saved,
        output_grad: FloatTensor<Self>,
        input_grad: bool,
    ) -> (
        Option<FloatTensor<Self>>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (first, second) = (&saved.statistics.0.tensor, &saved.statistics.1.tensor);
        // libtorch takes the batch's statistics as its saved mean and inverse standard
        // deviation, fixed ones as running statistics.
        let (running, batch) = match saved.batch_stats {
            true => ((None, None), (Some(first), Some(second))),
            false => ((Some(first), Some(second)), (None, None)),
        };
        let [dx, dgamma, dbeta] = outputs("batch norm backward", |[dx, dgamma, dbeta]| unsafe {
            agml_batch_norm_backward(
                output_grad.tensor.as_ptr(),
                saved.x.tensor.as_ptr(),
                saved.gamma.tensor.as_ptr(),
                optional(running.0),
                optional(running.1),
                optional(batch.0),
                optional(batch.1),
                saved.batch_stats.into(),
                saved.epsilon,
                input_grad.into(),
                dx,
                dgamma,
                dbeta,
            )
        });
        let gradient = |tensor: Option<tch::Tensor>| TchTensor::new(tensor.expect("a gradient"));
        (dx.map(TchTensor::new), gradient(dgamma), gradient(dbeta))
    }
}
