//! ResNet-18 and ResNet-50 ("Deep Residual Learning for Image Recognition", He et al., CVPR
//! 2016) in torchvision's layout, so that torchvision state dicts load by name. The
//! classifier is dropped: the backbone ends at layer4's map (total stride 32).

use crate::model::ops::relu;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Tensor;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

use crate::model::batchnorm::{FreezeBatchNorm, batch_norm};
use crate::model::layers::{Conv2d, ParamInit};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetDepth {
    R18,
    R50,
}

impl ResNetDepth {
    fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R50 => [3, 4, 6, 3],
        }
    }

    fn expansion(self) -> usize {
        match self {
            ResNetDepth::R18 => 1,
            ResNetDepth::R50 => 4,
        }
    }
}

/// ResNet without its classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    pub channels: usize,
}

/// A residual block: basic (two 3x3) or bottleneck (1x1, 3x3, 1x1); torchvision's names.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    /// torchvision's `downsample.0` (conv) and `downsample.1` (BN).
    pub downsample: Option<Downsample>,
}

/// The projection shortcut.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

fn bn(channels: usize, init: &ParamInit) -> BatchNorm {
    BatchNormConfig::new(channels).init(init.device())
}

impl Block {
    fn new(
        depth: ResNetDepth,
        input: usize,
        width: usize,
        stride: usize,
        init: &mut ParamInit,
    ) -> Self {
        let output = width * depth.expansion();
        let downsample = (stride != 1 || input != output).then(|| Downsample {
            conv: Conv2d::new(init, input, output, 1, stride),
            bn: bn(output, init),
        });
        match depth {
            ResNetDepth::R18 => Self {
                conv1: Conv2d::new(init, input, width, 3, stride),
                bn1: bn(width, init),
                conv2: Conv2d::new(init, width, width, 3, 1),
                bn2: bn(width, init),
                conv3: None,
                bn3: None,
                downsample,
            },
            // torchvision's ResNet v1.5: the stride sits on the 3x3 conv.
            ResNetDepth::R50 => Self {
                conv1: Conv2d::new(init, input, width, 1, 1),
                bn1: bn(width, init),
                conv2: Conv2d::new(init, width, width, 3, stride),
                bn2: bn(width, init),
                conv3: Some(Conv2d::new(init, width, output, 1, 1)),
                bn3: Some(bn(output, init)),
                downsample,
            },
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let mut out = relu(batch_norm(&self.bn1, self.conv1.forward(x)));
        out = batch_norm(&self.bn2, self.conv2.forward(out));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = batch_norm(bn3, conv3.forward(relu(out)));
        }
        relu(out + identity)
    }

    fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        Self {
            bn1: mode.apply(self.bn1),
            bn2: mode.apply(self.bn2),
            bn3: self.bn3.map(|bn| mode.apply(bn)),
            downsample: self.downsample.map(|d| Downsample {
                conv: d.conv,
                bn: mode.apply(d.bn),
            }),
            ..self
        }
    }
}

impl ResNet {
    /// A freshly initialised ResNet for `in_channels`-channel images.
    pub fn new(depth: ResNetDepth, in_channels: usize, init: &mut ParamInit) -> Self {
        let conv1 = Conv2d::new(init, in_channels, 64, 7, 2);
        let bn1 = bn(64, init);
        let mut input = 64;
        let mut layers: Vec<Vec<Block>> = Vec::new();
        for (stage, (&count, width)) in depth.blocks().iter().zip([64, 128, 256, 512]).enumerate() {
            let stride = if stage == 0 { 1 } else { 2 };
            let blocks = (0..count)
                .map(|i| {
                    let block =
                        Block::new(depth, input, width, if i == 0 { stride } else { 1 }, init);
                    input = width * depth.expansion();
                    block
                })
                .collect();
            layers.push(blocks);
        }
        let mut layers = layers.into_iter();
        Self {
            conv1,
            bn1,
            layer1: layers.next().expect("4 stages"),
            layer2: layers.next().expect("4 stages"),
            layer3: layers.next().expect("4 stages"),
            layer4: layers.next().expect("4 stages"),
            channels: input,
        }
    }

    /// Every BatchNorm in eval mode with fixed parameters, as the paper trains ResNet-50.
    pub fn freeze_batchnorm(self, mode: FreezeBatchNorm) -> Self {
        let freeze = |blocks: Vec<Block>| {
            blocks
                .into_iter()
                .map(|m| m.freeze_batchnorm(mode))
                .collect()
        };
        Self {
            bn1: mode.apply(self.bn1),
            layer1: freeze(self.layer1),
            layer2: freeze(self.layer2),
            layer3: freeze(self.layer3),
            layer4: freeze(self.layer4),
            ..self
        }
    }

    /// `[n, c, H, W]` -> `[n, C, H/32, W/32]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(batch_norm(&self.bn1, self.conv1.forward(x)));
        let x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x))
    }
}
