//! Adam as burn's `Adam` computes it, in one or two passes over each parameter on a CPU.
//!
//! burn composes the update of a dozen tensor operations (weight decay, both moments, the bias
//! corrections, the step), each a pass over the parameter and several into fresh buffers: a
//! tenth of a flex ResNet-18 step. [`FusedAdam`] keeps burn's state (`AdamState`, so
//! checkpoints are unchanged) and its f32 operations in their order for every element, so the
//! results are the same bits: on flex in one pass, on tch's CPU in two around libtorch's own
//! square root ([`NativeAdam`] for `Flex` and `LibTorch`; burn's fifteen libtorch kernels a
//! parameter were 12 % of a tch ResNet-18 step), on a GPU as burn's operations (the trait's
//! default body).
// burn marks its LibTorch backend deprecated; agml's tch backend is built on it.
#![cfg_attr(feature = "tch", allow(deprecated))]

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

/// Adam's constants for one step; `first`: the moments start here (burn's first step sets
/// them from the gradient alone, without the decayed zeros).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`.
    pub epsilon: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    pub combined_factor: f32,
    pub weight_decay: Option<f32>,
    pub first: bool,
}

/// One Adam update: `(param, moment_1, moment_2)` after the step.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait NativeAdam: Backend {
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_adam_update::<Self>(param, grad, moment_1, moment_2, step)
    }
}

/// burn's `Adam::step` and `AdaptiveMomentum::transform`, operation for operation, each a pass
/// over the parameter.
fn burns_adam_update<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let grad = match step.weight_decay {
        Some(penalty) => B::float_add(B::float_mul_scalar(param.clone(), penalty.into()), grad),
        None => grad,
    };
    let (f1, f2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
    let decayed_1 = B::float_mul_scalar(grad.clone(), f1.into());
    let decayed_2 = B::float_mul_scalar(B::float_powi_scalar(grad, 2.into()), f2.into());
    let (moment_1, moment_2) = if step.first {
        (decayed_1, decayed_2)
    } else {
        (
            B::float_add(B::float_mul_scalar(moment_1, step.beta_1.into()), decayed_1),
            B::float_add(B::float_mul_scalar(moment_2, step.beta_2.into()), decayed_2),
        )
    };
    let update = B::float_div(
        B::float_mul_scalar(moment_1.clone(), step.combined_factor.into()),
        B::float_add_scalar(B::float_sqrt(moment_2.clone()), step.epsilon.into()),
    );
    let delta = B::float_mul_scalar(update, step.lr.into());
    (B::float_sub(param, delta), moment_1, moment_2)
}

/// The same update as [`burns_adam_update`], element by element in one pass: each element's f32
/// operations in burn's order, so the same bits. Without `params` only the moments (libtorch's
/// square root is not IEEE's: tch takes it from libtorch, then [`step_params`]).
fn update_in_place(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    step: AdamStep,
    params: bool,
) {
    // One loop per case, without branches, so that the compiler vectorises it (with the
    // branches inside it ran one element at a time).
    match (step.weight_decay, step.first) {
        (Some(penalty), false) => in_chunks::<true, false>(p, m, v, g, step, penalty, params),
        (Some(penalty), true) => in_chunks::<true, true>(p, m, v, g, step, penalty, params),
        (None, false) => in_chunks::<false, false>(p, m, v, g, step, 0.0, params),
        (None, true) => in_chunks::<false, true>(p, m, v, g, step, 0.0, params),
    }
}

/// Elements a task of the parallel loops updates (every element on its own, so any split gives
/// the same bits).
const CHUNK: usize = 1 << 14;

fn in_chunks<const DECAY: bool, const FIRST: bool>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    step: AdamStep,
    penalty: f32,
    params: bool,
) {
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| match params {
            true => update_chunk::<DECAY, FIRST, true>(p, m, v, g, step, penalty),
            false => update_chunk::<DECAY, FIRST, false>(p, m, v, g, step, penalty),
        });
}

/// [`update_in_place`] on one chunk: `DECAY` with the L2 `penalty`, `FIRST` from zero moments,
/// `PARAMS` the parameters too. (Not inlined: a profile names it.)
#[inline(never)]
fn update_chunk<const DECAY: bool, const FIRST: bool, const PARAMS: bool>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    step: AdamStep,
    penalty: f32,
) {
    let n = p.len();
    let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
    let (f1, f2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
    let (beta_1, beta_2) = (step.beta_1, step.beta_2);
    for i in 0..n {
        let g = if DECAY { p[i] * penalty + g[i] } else { g[i] };
        let (decayed_1, decayed_2) = (g * f1, (g * g) * f2);
        if FIRST {
            (m[i], v[i]) = (decayed_1, decayed_2);
        } else {
            m[i] = m[i] * beta_1 + decayed_1;
            v[i] = v[i] * beta_2 + decayed_2;
        }
        if PARAMS {
            p[i] = stepped(p[i], m[i], v[i].sqrt(), &step);
        }
    }
}

/// The parameter after the step from its first moment and the square root of its second:
/// burn's last operations, in their order.
#[inline(always)]
fn stepped(p: f32, m: f32, root: f32, step: &AdamStep) -> f32 {
    let update = (m * step.combined_factor) / (root + step.epsilon);
    p - update * step.lr
}

/// The parameters' step of [`update_in_place`] with the second moments' square roots given.
#[cfg(feature = "tch")]
fn step_params(p: &mut [f32], m: &[f32], root: &[f32], step: AdamStep) {
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks(CHUNK))
        .zip(root.par_chunks(CHUNK))
        .for_each(|((p, m), root)| {
            let (m, root) = (&m[..p.len()], &root[..p.len()]);
            for i in 0..p.len() {
                p[i] = stepped(p[i], m[i], root[i], &step);
            }
        });
}

#[cfg(feature = "tch")]
impl NativeAdam for burn::backend::LibTorch {
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::libtorch::TchTensor;
        use tch::{Device, Kind};

        let cpu_f32 =
            |t: &TchTensor| t.tensor.device() == Device::Cpu && t.tensor.kind() == Kind::Float;
        if ![&param, &grad, &moment_1, &moment_2]
            .into_iter()
            .all(cpu_f32)
        {
            // On a GPU: libtorch's kernels, one per operation.
            return burns_adam_update::<Self>(param, grad, moment_1, moment_2, step);
        }
        // Updated in place where the optimiser holds the only reference (a copy otherwise).
        let writable = |t: TchTensor| {
            if t.can_mut() && t.tensor.is_contiguous() {
                return t;
            }
            let mut copy = tch::Tensor::empty(t.tensor.size(), (Kind::Float, Device::Cpu));
            copy.copy_(&t.tensor);
            TchTensor::new(copy)
        };
        let grad = grad.tensor.contiguous();
        let [param, moment_1, moment_2] = [param, moment_1, moment_2].map(writable);
        let n = grad.numel();
        if n > 0 {
            // SAFETY: four contiguous f32 CPU tensors of n elements; the three written ones
            // are each the only holder of their storage (`writable`), so no slice aliases.
            let slice = |t: &tch::Tensor| unsafe {
                std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n)
            };
            let grad = unsafe { std::slice::from_raw_parts(grad.data_ptr().cast::<f32>(), n) };
            let (p, m, v) = (
                slice(&param.tensor),
                slice(&moment_1.tensor),
                slice(&moment_2.tensor),
            );
            update_in_place(p, &mut *m, &mut *v, grad, step, false);
            // libtorch's square root, as burn's Adam takes it (not correctly rounded: it is
            // SLEEF's or MKL's, so the loop's own would change the bits).
            let roots = moment_2.tensor.sqrt();
            // SAFETY: a fresh contiguous f32 tensor of n elements, alive to the block's end.
            let root = unsafe { std::slice::from_raw_parts(roots.data_ptr().cast::<f32>(), n) };
            step_params(p, m, root, step);
        }
        (param, moment_1, moment_2)
    }
}

impl NativeAdam for Flex {
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let grad = grad.to_contiguous();
        let g = grad.as_slice::<f32>().expect("contiguous f32");
        // Updated in place where the optimiser holds the only reference (a copy otherwise).
        let [mut param, mut moment_1, mut moment_2] =
            [param, moment_1, moment_2].map(|t| t.to_contiguous());
        let (p, m, v) = (
            values_mut(&mut param),
            values_mut(&mut moment_1),
            values_mut(&mut moment_2),
        );
        update_in_place(p, m, v, g, step, true);
        (param, moment_1, moment_2)
    }
}

/// A contiguous f32 tensor's values, writable (copied first if shared).
fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = tensor.layout().contiguous_offsets().expect("contiguous");
    &mut tensor.storage_mut::<f32>()[start..end]
}

impl<B: NativeAdam, C: CheckpointStrategy> NativeAdam for Autodiff<B, C> {
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // An optimiser step is not differentiated: the results are constants.
        let (p, m, v) = B::adam_update(
            param.into_primitive(),
            grad.into_primitive(),
            moment_1.into_primitive(),
            moment_2.into_primitive(),
            step,
        );
        let constant = <FloatTensor<Self>>::new;
        (constant(p), constant(m), constant(v))
    }
}

/// burn's Adam (no AMSGrad), its update from [`NativeAdam`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: Option<f32>,
}

impl FusedAdam {
    /// burn's `AdamConfig` defaults (betas 0.9 and 0.999) with `epsilon` and L2 `weight_decay`
    /// (none at 0).
    pub fn new(weight_decay: f64, epsilon: f64) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: epsilon as f32,
            weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // The first step's moments are never read: the gradient stands in for them.
        let (time, moment_1, moment_2) = match state {
            Some(state) => {
                let momentum = state.momentum;
                (momentum.time + 1, momentum.moment_1, momentum.moment_2)
            }
            None => (1, grad.clone(), grad.clone()),
        };
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(t)).sqrt();
        let step = AdamStep {
            lr: lr as f32,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon * bias_correction2_sqrt,
            combined_factor: bias_correction2_sqrt / (1.0 - self.beta_1.powi(t)),
            weight_decay: self.weight_decay,
            first: time == 1,
        };
        let (param, moment_1, moment_2) = <Dispatch as NativeAdam>::adam_update(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            step,
        );
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        );
        (Tensor::from_dispatch(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamState::new(state.momentum.to_device(device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamConfig;
    use burn::optim::decay::WeightDecayConfig;
    use burn::tensor::Distribution;

    fn bits(tensor: &Tensor<2>) -> Vec<u32> {
        let values = tensor.to_data().try_to_vec::<f32>().expect("f32");
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// Five steps of both on the same tensors (with and without weight decay, on every backend
    /// of the build, with and without autodiff): the same parameters and moments, bit for bit.
    #[test]
    fn fused_adam_is_burns_adam_bit_for_bit() {
        let mut devices = crate::model::ops::test_devices();
        devices.push(Device::flex());
        for device in devices {
            for weight_decay in [0.0, 3e-3] {
                let config = AdamConfig::new().with_epsilon(1e-8).with_weight_decay(
                    (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
                );
                let (burns, fused) = (config.build(), FusedAdam::new(weight_decay, 1e-8));
                let init = Tensor::<2>::random([67, 129], Distribution::Normal(0.0, 1.0), &device);
                let (mut a, mut b) = (init.clone(), init.clone());
                let (mut state_a, mut state_b) = (None, None);
                for step in 0..5 {
                    let grad =
                        Tensor::<2>::random([67, 129], Distribution::Normal(0.0, 0.1), &device);
                    let lr = 1e-3 / (step + 1) as f64;
                    (a, state_a) = burns.step(lr, a, grad.clone(), state_a);
                    (b, state_b) = fused.step(lr, b, grad, state_b);
                    let (sa, sb): (&AdamState<2>, &AdamState<2>) =
                        (state_a.as_ref().unwrap(), state_b.as_ref().unwrap());
                    let what = format!("{device:?}, weight decay {weight_decay}, step {step}");
                    assert_eq!(bits(&a), bits(&b), "parameters: {what}");
                    assert_eq!(sa.momentum.time, sb.momentum.time, "time: {what}");
                    assert_eq!(
                        bits(&sa.momentum.moment_1),
                        bits(&sb.momentum.moment_1),
                        "moment 1: {what}"
                    );
                    assert_eq!(
                        bits(&sa.momentum.moment_2),
                        bits(&sb.momentum.moment_2),
                        "moment 2: {what}"
                    );
                }
                assert_ne!(bits(&a), bits(&init), "the parameters moved");
            }
        }
    }
}
