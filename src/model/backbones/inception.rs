//! Inception backbones: GoogLeNet ("Going Deeper with Convolutions", Szegedy et al., CVPR
//! 2015) in torchvision's layout (conv + BN, so its state dicts load by name), and
//! BN-Inception ("Batch Normalization", Ioffe & Szegedy, ICML 2015), the backbone of most deep
//! metric learning papers. Both end at their last inception block (1024 channels, stride 32).

use crate::model::ops::relu;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Tensor;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use crate::model::batchnorm::{FreezeBatchNorm, batch_norm};
use crate::model::layers::{Conv2d, ParamInit};

/// Conv, BatchNorm, ReLU (torchvision's `BasicConv2d`: `conv`, `bn`).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(
        init: &mut ParamInit,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        style: Style,
    ) -> Self {
        let conv = match style {
            Style::GoogLeNet => Conv2d::new(init, input, output, kernel, stride),
            Style::BnInception => Conv2d::with_bias(init, input, output, kernel, stride),
        };
        let epsilon = match style {
            Style::GoogLeNet => 1e-3,
            Style::BnInception => 1e-5,
        };
        Self {
            conv,
            bn: BatchNormConfig::new(output)
                .with_epsilon(epsilon)
                .init(init.device()),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(batch_norm(&self.bn, self.conv.forward(x)))
    }

    fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        Self {
            bn: mode.apply(self.bn),
            ..self
        }
    }
}

/// The two layouts differ in conv biases, BN epsilon and block shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    GoogLeNet,
    BnInception,
}

fn max_pool(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    let options = MaxPoolOptions::new([kernel; 2])
        .with_stride([stride; 2])
        .with_padding([padding; 2])
        .with_ceil_mode(true);
    max_pool2d(x, options)
}

fn avg_pool(x: Tensor<4>) -> Tensor<4> {
    let options = AvgPoolOptions::new([3, 3])
        .with_stride([1, 1])
        .with_padding([1, 1])
        .with_ceil_mode(true);
    avg_pool2d(x, options)
}

/// An inception block: a 1x1 branch, a 3x3 branch, a "5x5" (GoogLeNet: 3x3 in torchvision;
/// BN-Inception: two 3x3) branch and a pooling branch, concatenated over channels. Stride-2
/// blocks (BN-Inception 3c, 4e) have no 1x1 branch and pool without projection.
#[derive(Module, Debug)]
pub struct Inception {
    pub branch1: Option<ConvBn>,
    pub branch2: Vec<ConvBn>,
    pub branch3: Vec<ConvBn>,
    pub branch4: Option<ConvBn>,
    /// Pooling branch: 0 max (GoogLeNet, BN-Inception 5b), 1 average; stride-2 blocks max-pool.
    pub average_pool: bool,
    pub stride: usize,
}

impl Inception {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let chain = |convs: &Vec<ConvBn>, x: Tensor<4>| convs.iter().fold(x, |x, c| c.forward(x));
        let mut outputs = Vec::with_capacity(4);
        if let Some(b1) = &self.branch1 {
            outputs.push(b1.forward(x.clone()));
        }
        outputs.push(chain(&self.branch2, x.clone()));
        outputs.push(chain(&self.branch3, x.clone()));
        let pooled = if self.stride == 2 {
            max_pool(x, 3, 2, 0)
        } else if self.average_pool {
            avg_pool(x)
        } else {
            max_pool(x, 3, 1, 1)
        };
        outputs.push(match &self.branch4 {
            Some(projection) => projection.forward(pooled),
            None => pooled,
        });
        Tensor::cat(outputs, 1)
    }

    fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        let freeze = |v: Vec<ConvBn>| v.into_iter().map(|m| m.freeze_batchnorm(mode)).collect();
        Self {
            branch1: self.branch1.map(|m| m.freeze_batchnorm(mode)),
            branch2: freeze(self.branch2),
            branch3: freeze(self.branch3),
            branch4: self.branch4.map(|m| m.freeze_batchnorm(mode)),
            ..self
        }
    }
}

/// GoogLeNet (torchvision), without auxiliary classifiers and classifier.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub conv3: ConvBn,
    pub inception3a: Inception,
    pub inception3b: Inception,
    pub inception4a: Inception,
    pub inception4b: Inception,
    pub inception4c: Inception,
    pub inception4d: Inception,
    pub inception4e: Inception,
    pub inception5a: Inception,
    pub inception5b: Inception,
    /// torchvision's `transform_input`: its ImageNet weights expect inputs rescaled from the
    /// ImageNet normalisation to (x - 0.5) / 0.5 per channel.
    pub transform_input: bool,
}

fn googlenet_block(init: &mut ParamInit, c: [usize; 7]) -> Inception {
    let [input, b1, b2_reduce, b2, b3_reduce, b3, b4] = c;
    let s = Style::GoogLeNet;
    Inception {
        branch1: Some(ConvBn::new(init, input, b1, 1, 1, s)),
        branch2: vec![
            ConvBn::new(init, input, b2_reduce, 1, 1, s),
            ConvBn::new(init, b2_reduce, b2, 3, 1, s),
        ],
        // torchvision keeps a 3x3 kernel here (a known deviation from the paper's 5x5).
        branch3: vec![
            ConvBn::new(init, input, b3_reduce, 1, 1, s),
            ConvBn::new(init, b3_reduce, b3, 3, 1, s),
        ],
        branch4: Some(ConvBn::new(init, input, b4, 1, 1, s)),
        average_pool: false,
        stride: 1,
    }
}

impl GoogLeNet {
    /// A freshly initialised GoogLeNet for `in_channels`-channel images.
    pub fn new(in_channels: usize, transform_input: bool, init: &mut ParamInit) -> Self {
        let s = Style::GoogLeNet;
        Self {
            conv1: ConvBn::new(init, in_channels, 64, 7, 2, s),
            conv2: ConvBn::new(init, 64, 64, 1, 1, s),
            conv3: ConvBn::new(init, 64, 192, 3, 1, s),
            inception3a: googlenet_block(init, [192, 64, 96, 128, 16, 32, 32]),
            inception3b: googlenet_block(init, [256, 128, 128, 192, 32, 96, 64]),
            inception4a: googlenet_block(init, [480, 192, 96, 208, 16, 48, 64]),
            inception4b: googlenet_block(init, [512, 160, 112, 224, 24, 64, 64]),
            inception4c: googlenet_block(init, [512, 128, 128, 256, 24, 64, 64]),
            inception4d: googlenet_block(init, [512, 112, 144, 288, 32, 64, 64]),
            inception4e: googlenet_block(init, [528, 256, 160, 320, 32, 128, 128]),
            inception5a: googlenet_block(init, [832, 256, 160, 320, 32, 128, 128]),
            inception5b: googlenet_block(init, [832, 384, 192, 384, 48, 128, 128]),
            transform_input,
        }
    }

    /// `[n, 3, H, W]` (ImageNet-normalised) -> `[n, 1024, H/32, W/32]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.transform_input {
            transform_input(x)
        } else {
            x
        };
        let x = max_pool(self.conv1.forward(x), 3, 2, 0);
        let x = max_pool(self.conv3.forward(self.conv2.forward(x)), 3, 2, 0);
        let x = self.inception3b.forward(self.inception3a.forward(x));
        let x = max_pool(x, 3, 2, 0);
        let x = [
            &self.inception4a,
            &self.inception4b,
            &self.inception4c,
            &self.inception4d,
            &self.inception4e,
        ]
        .into_iter()
        .fold(x, |x, block| block.forward(x));
        let x = max_pool(x, 2, 2, 0);
        self.inception5b.forward(self.inception5a.forward(x))
    }

    /// Every BatchNorm frozen as `mode` says.
    pub fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        Self {
            conv1: self.conv1.freeze_batchnorm(mode),
            conv2: self.conv2.freeze_batchnorm(mode),
            conv3: self.conv3.freeze_batchnorm(mode),
            inception3a: self.inception3a.freeze_batchnorm(mode),
            inception3b: self.inception3b.freeze_batchnorm(mode),
            inception4a: self.inception4a.freeze_batchnorm(mode),
            inception4b: self.inception4b.freeze_batchnorm(mode),
            inception4c: self.inception4c.freeze_batchnorm(mode),
            inception4d: self.inception4d.freeze_batchnorm(mode),
            inception4e: self.inception4e.freeze_batchnorm(mode),
            inception5a: self.inception5a.freeze_batchnorm(mode),
            inception5b: self.inception5b.freeze_batchnorm(mode),
            ..self
        }
    }
}

/// torchvision GoogLeNet's input transform: x * std / 0.5 + (mean - 0.5) / 0.5 per channel.
fn transform_input(x: Tensor<4>) -> Tensor<4> {
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    let channels: Vec<Tensor<4>> = (0..3)
        .map(|c| x.clone().narrow(1, c, 1) * (STD[c] / 0.5) + (MEAN[c] - 0.5) / 0.5)
        .collect();
    Tensor::cat(channels, 1)
}

/// BN-Inception (the deep metric learning variant: conv biases, BN after every conv).
#[derive(Module, Debug)]
pub struct BnInception {
    pub conv1: ConvBn,
    pub conv2_reduce: ConvBn,
    pub conv2: ConvBn,
    pub blocks: Vec<Inception>,
}

/// Channel widths of one BN-Inception block; a 0 width means the branch is absent.
struct BlockWidths {
    input: usize,
    b1: usize,
    b2_reduce: usize,
    b2: usize,
    b3_reduce: usize,
    b3: usize,
    b4: usize,
    average_pool: bool,
    stride: usize,
}

const fn widths(w: [usize; 7], average_pool: bool, stride: usize) -> BlockWidths {
    BlockWidths {
        input: w[0],
        b1: w[1],
        b2_reduce: w[2],
        b2: w[3],
        b3_reduce: w[4],
        b3: w[5],
        b4: w[6],
        average_pool,
        stride,
    }
}

/// Blocks 3a .. 5b: (input, 1x1, 3x3 reduce, 3x3, double reduce, double 3x3, pool projection).
const BN_INCEPTION_BLOCKS: [BlockWidths; 10] = [
    widths([192, 64, 64, 64, 64, 96, 32], true, 1),
    widths([256, 64, 64, 96, 64, 96, 64], true, 1),
    widths([320, 0, 128, 160, 64, 96, 0], false, 2),
    widths([576, 224, 64, 96, 96, 128, 128], true, 1),
    widths([576, 192, 96, 128, 96, 128, 128], true, 1),
    widths([576, 160, 128, 160, 128, 160, 128], true, 1),
    widths([608, 96, 128, 192, 160, 192, 128], true, 1),
    widths([608, 0, 128, 192, 192, 256, 0], false, 2),
    widths([1056, 352, 192, 320, 160, 224, 128], true, 1),
    // 5b pools with max, not average.
    widths([1024, 352, 192, 320, 192, 224, 128], false, 1),
];

impl BnInception {
    /// A freshly initialised BN-Inception for `in_channels`-channel images.
    pub fn new(in_channels: usize, init: &mut ParamInit) -> Self {
        let s = Style::BnInception;
        let blocks = BN_INCEPTION_BLOCKS
            .iter()
            .map(|w| Inception {
                branch1: (w.b1 > 0).then(|| ConvBn::new(init, w.input, w.b1, 1, 1, s)),
                branch2: vec![
                    ConvBn::new(init, w.input, w.b2_reduce, 1, 1, s),
                    ConvBn::new(init, w.b2_reduce, w.b2, 3, w.stride, s),
                ],
                branch3: vec![
                    ConvBn::new(init, w.input, w.b3_reduce, 1, 1, s),
                    ConvBn::new(init, w.b3_reduce, w.b3, 3, 1, s),
                    ConvBn::new(init, w.b3, w.b3, 3, w.stride, s),
                ],
                branch4: (w.b4 > 0).then(|| ConvBn::new(init, w.input, w.b4, 1, 1, s)),
                average_pool: w.average_pool,
                stride: w.stride,
            })
            .collect();
        Self {
            conv1: ConvBn::new(init, in_channels, 64, 7, 2, s),
            conv2_reduce: ConvBn::new(init, 64, 64, 1, 1, s),
            conv2: ConvBn::new(init, 64, 192, 3, 1, s),
            blocks,
        }
    }

    /// `[n, 3, H, W]` -> `[n, 1024, H/32, W/32]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = max_pool(self.conv1.forward(x), 3, 2, 0);
        let x = max_pool(self.conv2.forward(self.conv2_reduce.forward(x)), 3, 2, 0);
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }

    /// Every BatchNorm frozen as `mode` says.
    pub fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        Self {
            conv1: self.conv1.freeze_batchnorm(mode),
            conv2_reduce: self.conv2_reduce.freeze_batchnorm(mode),
            conv2: self.conv2.freeze_batchnorm(mode),
            blocks: self
                .blocks
                .into_iter()
                .map(|m| m.freeze_batchnorm(mode))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn bn_inception_ends_in_1024_channels_at_stride_32() {
        let device = Device::default();
        let net = BnInception::new(3, &mut ParamInit::new(0, &device));
        let x = Tensor::<4>::random([1, 3, 96, 96], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(net.forward(x).dims(), [1, 1024, 3, 3]);
        // 3c and 4e halve the map; every other block keeps it.
        let widths: Vec<usize> = BN_INCEPTION_BLOCKS.iter().map(|w| w.input).collect();
        assert_eq!(
            widths,
            vec![192, 256, 320, 576, 576, 576, 608, 608, 1056, 1024]
        );
    }
}
