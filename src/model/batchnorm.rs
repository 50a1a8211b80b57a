//! A backbone's BatchNorm layers: their forward pass through agml's BatchNorm operations, and
//! frozen BatchNorm, two ways: the authors' (running statistics fixed, gamma and beta still
//! trained: `module.eval(); module.train = lambda _: None` in DGML-master's resnet50.py) and a
//! full freeze (statistics and affine parameters fixed).

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use super::ops::{batch_norm_batch_stats, batch_norm_fixed_stats};

/// `bn` applied to `x` `[n, c, h, w]` with burn's BatchNorm semantics, one operation each way:
/// while training (an autodiff device and the layer's training flag set), the batch's
/// statistics, and the running ones updated with the layer's momentum (biased variance, as
/// burn does); otherwise the running statistics.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        return batch_norm_fixed_stats(
            x,
            bn.gamma.val(),
            bn.beta.val(),
            bn.running_mean.value().to_device(&device),
            bn.running_var.value().to_device(&device),
            bn.epsilon,
        );
    }
    let (output, mean, variance) =
        batch_norm_batch_stats(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let momentum = bn.momentum;
    let update = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum))
            .detach()
    };
    bn.running_mean
        .update(update(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(update(bn.running_var.value_sync(), variance));
    output
}

/// How a backbone's BatchNorm layers are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeBatchNorm {
    /// Eval mode (running statistics used, never updated); gamma and beta keep training.
    Statistics,
    /// Eval mode and gamma, beta fixed.
    All,
}

impl FreezeBatchNorm {
    /// `bn` frozen this way.
    pub fn apply(self, bn: BatchNorm) -> BatchNorm {
        match self {
            // burn's BatchNorm takes its training path only while its `training` flag is set.
            FreezeBatchNorm::Statistics => BatchNorm {
                training: bn.training.clone().with_value(false),
                ..bn
            },
            FreezeBatchNorm::All => bn.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    fn grads_and_stats(mode: FreezeBatchNorm) -> (bool, bool, Vec<f32>) {
        let device = Device::default().autodiff();
        let bn = mode.apply(BatchNormConfig::new(3).init(&device));
        // The input is tracked, so a graph exists even when nothing of the layer trains.
        let x = Tensor::<4>::random([4, 3, 2, 2], Distribution::Normal(2.0, 1.0), &device)
            .require_grad();
        let loss = bn.forward(x).sum();
        let grads = loss.backward();
        let gamma = bn.gamma.val().grad(&grads).is_some();
        let beta = bn.beta.val().grad(&grads).is_some();
        let mean = bn
            .running_mean
            .value()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        (gamma, beta, mean)
    }

    #[test]
    fn statistics_stay_fixed_and_only_the_authors_freeze_trains_gamma_and_beta() {
        let (gamma, beta, mean) = grads_and_stats(FreezeBatchNorm::Statistics);
        assert!(gamma && beta, "gamma and beta train");
        assert_eq!(
            mean, [0.0; 3],
            "running mean untouched by a training forward"
        );
        let (gamma, beta, mean) = grads_and_stats(FreezeBatchNorm::All);
        assert!(!gamma && !beta, "nothing trains");
        assert_eq!(mean, [0.0; 3]);
    }
}
