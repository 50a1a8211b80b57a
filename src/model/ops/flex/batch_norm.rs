//! BatchNorm on flex: one kernel for the statistics and one for the normalisation, each way.
//! Statistics run in parallel over channels, element-wise parts over (image, channel) planes.
//! Every sum has a fixed order (eight f32 lanes within a plane, planes added in f64), so the
//! results do not depend on the thread count or the machine's SIMD width.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, tensor::FloatTensor};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use crate::model::ops::batch_norm::{BatchNormGradients, NativeBatchNorm};

/// What the backward pass reads.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The input, contiguous.
    x: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Whether the statistics were the batch's (they then depend on x).
    batch_stats: bool,
}

/// An `[n, c, ...]` tensor's f32 values seen as n * c planes.
struct Planes<'a> {
    values: &'a [f32],
    channels: usize,
    plane: usize,
}

impl<'a> Planes<'a> {
    fn of(tensor: &'a FlexTensor) -> Self {
        let dims = tensor.shape().dims::<4>();
        assert_eq!(tensor.dtype(), DType::F32, "agml's BatchNorm runs on f32");
        Self {
            values: tensor.as_slice::<f32>().expect("a contiguous f32 tensor"),
            channels: dims[1],
            plane: dims[2] * dims[3],
        }
    }

    /// The planes of `channel`, image by image.
    fn channel(&self, channel: usize) -> impl Iterator<Item = &'a [f32]> + '_ {
        self.values
            .chunks_exact(self.plane)
            .skip(channel)
            .step_by(self.channels)
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.values.len() / self.channels
    }
}

/// `sum f(a_i, b_i)` over two planes in a fixed order: eight f32 lanes, then the lanes.
fn plane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(&a, &b)| f(a, b))
        .sum();
    for (a, b) in a8.zip(b8) {
        for lane in 0..8 {
            lanes[lane] += f(a[lane], b[lane]);
        }
    }
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// Per channel `sum f(a_i, b_i)` over its planes, in parallel over channels.
fn channel_sums(a: &Planes, b: &Planes, f: impl Fn(usize, f32, f32) -> f32 + Sync) -> Vec<f64> {
    (0..a.channels)
        .into_par_iter()
        .map(|c| {
            a.channel(c)
                .zip(b.channel(c))
                .map(|(a, b)| plane_sum(a, b, |a, b| f(c, a, b)))
                .sum()
        })
        .collect()
}

/// `out[i] = f(channel, a[i], b[i])`, in parallel over planes.
fn map_planes(a: &Planes, b: &Planes, f: impl Fn(usize, f32, f32) -> f32 + Sync) -> Vec<f32> {
    let (channels, plane) = (a.channels, a.plane);
    let mut out = vec![0f32; a.values.len()];
    out.par_chunks_mut(plane)
        .zip(a.values.par_chunks(plane).zip(b.values.par_chunks(plane)))
        .enumerate()
        .for_each(|(index, (out, (a, b)))| {
            let c = index % channels;
            for ((out, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *out = f(c, a, b);
            }
        });
    out
}

fn tensor(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let len = values.len();
    FlexTensor::from_data(TensorData::new(values, [len]))
}

fn values(tensor: &FlexTensor) -> Vec<f32> {
    tensor
        .to_contiguous()
        .as_slice::<f32>()
        .expect("f32 values")
        .to_vec()
}

/// `(mean, biased variance)` per channel of `x` (two passes: the variance of the centred
/// values, which keeps its precision when the mean is large).
fn batch_statistics(x: &Planes) -> (Vec<f32>, Vec<f32>) {
    let count = x.count() as f64;
    let mean: Vec<f32> = channel_sums(x, x, |_, v, _| v)
        .into_iter()
        .map(|sum| (sum / count) as f32)
        .collect();
    let variance = channel_sums(x, x, |c, v, _| (v - mean[c]) * (v - mean[c]))
        .into_iter()
        .map(|sum| (sum / count) as f32)
        .collect();
    (mean, variance)
}

fn inverse_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// `(x - mean) * (gamma * invstd) + beta`: centred first, which keeps the precision that
/// `x * scale + shift` loses when the mean is large.
fn normalise(
    x: &FlexTensor,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    invstd: &[f32],
) -> FlexTensor {
    let planes = Planes::of(x);
    let scale: Vec<f32> = gamma.iter().zip(invstd).map(|(g, s)| g * s).collect();
    tensor(
        map_planes(&planes, &planes, |c, v, _| {
            (v - mean[c]) * scale[c] + beta[c]
        }),
        x,
    )
}

/// Output and what the backward pass reads; `statistics`: fixed mean and variance, or `None`
/// for the batch's. Also returns the variance used.
fn forward(
    x: FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    statistics: Option<(Vec<f32>, Vec<f32>)>,
    epsilon: f64,
) -> (FlexTensor, Vec<f32>, Saved) {
    let x = x.to_contiguous();
    let batch_stats = statistics.is_none();
    let (mean, variance) = statistics.unwrap_or_else(|| batch_statistics(&Planes::of(&x)));
    let invstd = inverse_std(&variance, epsilon);
    let gamma = values(gamma);
    let output = normalise(&x, &gamma, &values(beta), &mean, &invstd);
    let saved = Saved {
        x,
        gamma,
        mean,
        invstd,
        batch_stats,
    };
    (output, variance, saved)
}

impl NativeBatchNorm for Flex {
    fn batch_norm_batch_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (output, mean, variance, _) = Self::batch_stats_saving(x, gamma, beta, epsilon);
        (output, mean, variance)
    }

    fn batch_norm_fixed_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::fixed_stats_saving(x, gamma, beta, mean, variance, epsilon).0
    }
}

impl BatchNormGradients for Flex {
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
        let (output, variance, saved) = forward(x, &gamma, &beta, None, epsilon);
        let mean = vector(saved.mean.clone());
        (output, mean, vector(variance), saved)
    }

    fn fixed_stats_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, Saved) {
        let statistics = (values(&mean), values(&variance));
        let (output, _, saved) = forward(x, &gamma, &beta, Some(statistics), epsilon);
        (output, saved)
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
        let Saved {
            x,
            gamma,
            mean,
            invstd,
            batch_stats,
        } = saved;
        let grad = output_grad.to_contiguous();
        let (xs, dy) = (Planes::of(&x), Planes::of(&grad));
        let sum_dy = channel_sums(&dy, &dy, |_, g, _| g);
        // sum dy * (x - mean): the gamma gradient times the standard deviation.
        let sum_dy_centred = channel_sums(&dy, &xs, |c, g, v| g * (v - mean[c]));
        let dgamma = (0..gamma.len()).map(|c| (sum_dy_centred[c] * invstd[c] as f64) as f32);
        let dbeta = sum_dy.iter().map(|&s| s as f32).collect();
        let dx = input_grad.then(|| {
            let scale: Vec<f32> = gamma.iter().zip(&invstd).map(|(g, s)| g * s).collect();
            let dx = if batch_stats {
                // The batch's statistics depend on x: dy less its mean and its projection on
                // the normalised input.
                let count = xs.count() as f64;
                let mean_dy: Vec<f32> = sum_dy.iter().map(|&s| (s / count) as f32).collect();
                let projection: Vec<f32> = (0..scale.len())
                    .map(|c| (sum_dy_centred[c] / count) as f32 * invstd[c] * invstd[c])
                    .collect();
                map_planes(&dy, &xs, |c, g, v| {
                    scale[c] * (g - mean_dy[c] - (v - mean[c]) * projection[c])
                })
            } else {
                map_planes(&dy, &dy, |c, g, _| g * scale[c])
            };
            tensor(dx, &x)
        });
        (dx, vector(dgamma.collect()), vector(dbeta))
    }
}
