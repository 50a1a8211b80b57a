//! Layers whose parameters are drawn from the run's own seeded generator.
//!
//! burn's initialisers draw from the backend's global generator, which cells running in
//! parallel would share; drawing from a generator owned by the run keeps every run
//! reproducible whatever else the process does.

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of initial parameter values.
pub struct ParamInit {
    rng: ChaCha8Rng,
    device: Device,
}

impl ParamInit {
    /// Parameters for the run seeded with `seed`, created on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A parameter of `shape` drawn uniformly from [-bound, bound].
    pub fn uniform<const D: usize>(&mut self, shape: [usize; D], bound: f64) -> Param<Tensor<D>> {
        let count: usize = shape.iter().product();
        let bound = bound as f32;
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }
}

/// A 2-D convolution with square kernels and "same" padding (k / 2), bias-free unless built
/// `with_bias`.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`
    pub weight: Param<Tensor<4>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// He-uniform initialisation (bound sqrt(6 / fan_in)), suited to a following ReLU.
    pub fn new(
        init: &mut ParamInit,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let fan_in = (input * kernel * kernel) as f64;
        Self {
            weight: init.uniform([output, input, kernel, kernel], (6.0 / fan_in).sqrt()),
            bias: None,
            stride,
            padding: kernel / 2,
        }
    }

    /// With a bias (uniform in +-1 / sqrt(fan_in), PyTorch's default).
    pub fn with_bias(
        init: &mut ParamInit,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let conv = Self::new(init, input, output, kernel, stride);
        let bound = 1.0 / ((input * kernel * kernel) as f64).sqrt();
        Self {
            bias: Some(init.uniform([output], bound)),
            ..conv
        }
    }

    /// `[n, in, h, w]` -> `[n, out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        // agml's convolution: burn's forward and input gradient, agml's weight gradient.
        let y = super::ops::conv2d(x, self.weight.val(), options);
        match &self.bias {
            Some(bias) => {
                let [n, out, h, w] = y.dims();
                y + bias.val().reshape([1, out, 1, 1]).expand([n, out, h, w])
            }
            None => y,
        }
    }
}

/// A linear map (also a 1x1 convolution applied position-wise), bias-free unless built
/// `with_bias`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]`
    pub weight: Param<Tensor<2>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// Bias-free, PyTorch's default bound 1 / sqrt(fan_in) (kaiming_uniform with a = sqrt(5)).
    pub fn new(init: &mut ParamInit, input: usize, output: usize) -> Self {
        Self {
            weight: init.uniform([input, output], 1.0 / (input as f64).sqrt()),
            bias: None,
        }
    }

    /// With a bias drawn like PyTorch's (uniform in +-1 / sqrt(fan_in)).
    pub fn with_bias(init: &mut ParamInit, input: usize, output: usize) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            weight: init.uniform([input, output], bound),
            bias: Some(init.uniform([output], bound)),
        }
    }

    /// `[..., in]` -> `[..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}

/// One linear map per group, applied to that group's slice: `[n, P, M, in]` -> `[n, P, M, out]`.
#[derive(Module, Debug)]
pub struct GroupedLinear {
    /// `[P, in, out]`
    pub weight: Param<Tensor<3>>,
    /// `[P, out]`
    pub bias: Option<Param<Tensor<2>>>,
}

impl GroupedLinear {
    /// `groups` bias-free maps `input -> output`, weights initialised like [`Linear::with_bias`]'s.
    pub fn new(init: &mut ParamInit, groups: usize, input: usize, output: usize) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            weight: init.uniform([groups, input, output], bound),
            bias: None,
        }
    }

    /// `groups` maps `input -> output`, with biases, initialised like [`Linear::with_bias`].
    pub fn with_bias(init: &mut ParamInit, groups: usize, input: usize, output: usize) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            weight: init.uniform([groups, input, output], bound),
            bias: Some(init.uniform([groups, output], bound)),
        }
    }

    /// `[n, P, M, in]` -> `[n, P, M, out]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, groups, rows, _] = x.dims();
        let [_, input, output] = self.weight.dims();
        let weight = self
            .weight
            .val()
            .unsqueeze::<4>()
            .expand([n, groups, input, output]);
        let y = x.matmul(weight);
        match &self.bias {
            Some(bias) => {
                y + bias
                    .val()
                    .reshape([1, groups, 1, output])
                    .expand([n, groups, rows, output])
            }
            None => y,
        }
    }
}

/// Divides each vector along the last axis by its L2 norm.
pub fn l2_normalize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(1e-12);
    x / norm
}
