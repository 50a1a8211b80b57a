//! flex and tch agree: the same weights and the same fixed batch give the same embedding
//! (within 1e-4) and the same loss (within 1e-5 relative; the diversity loss 5e-5). Built only with both backends:
//! `make test BACKEND=tch`.
#![cfg(all(feature = "flex", feature = "tch"))]

use agml::loss::{LossConfig, LossName, LossShape, MetricLoss, diversity_loss};
use agml::model::GroupShape;
use agml::model::embedder::EmbedderConfig;
use agml::model::layers::ParamInit;
use agml::model::{BackboneKind, HeadKind};
use agml::train::Backend;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 8;

struct Outcome {
    embedding: Vec<f32>,
    maps: Option<Vec<f32>>,
    losses: Vec<f32>,
}

/// One forward pass in training mode (batch statistics) and the losses of it.
fn forward(backend: Backend, backbone: BackboneKind, head: HeadKind, size: usize) -> Outcome {
    let device: Device = backend.device().unwrap().autodiff();
    let channels = if backbone == BackboneKind::ConvnetSmall {
        1
    } else {
        3
    };
    let groups = 4;
    let spec = EmbedderConfig {
        backbone,
        pretrained: None,
        freeze_batchnorm: None,
        transform_input: false,
        head,
        in_channels: channels,
        groups: GroupShape::of(head, groups, 32),

        reduction: 4,
        seed: 3,
    };
    let model = spec.init(&device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let pixels: Vec<f32> = (0..BATCH * channels * size * size)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let images = Tensor::<4>::from_data(
        TensorData::new(pixels, [BATCH, channels, size, size]),
        &device,
    );
    let output = model.forward(images);
    let labels: Vec<usize> = (0..BATCH).map(|i| i / 2).collect();
    let shape = LossShape {
        groups,
        classes: BATCH / 2,
        group_size: 32 / groups,
    };
    let mut losses = Vec::new();
    for name in [LossName::Margin, LossName::MultiSimilarity] {
        let criterion = MetricLoss::new(
            &LossConfig::default_for(name),
            shape,
            &mut ParamInit::new(1, &device),
        );
        let loss = criterion.forward(
            output.groups.clone(),
            &labels,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        losses.push(loss.into_data().try_into_vec::<f32>().unwrap()[0]);
    }
    losses.push(
        diversity_loss(output.groups.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0],
    );
    Outcome {
        embedding: output.groups.into_data().try_into_vec::<f32>().unwrap(),
        maps: output
            .maps
            .map(|m| m.into_data().try_into_vec::<f32>().unwrap()),
        losses,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_same(backbone: BackboneKind, head: HeadKind, size: usize) {
    let flex = forward(Backend::Flex, backbone, head, size);
    let tch = forward(Backend::Tch, backbone, head, size);
    let embedding = max_abs_diff(&flex.embedding, &tch.embedding);
    eprintln!(
        "{backbone} + {head}: embedding max |flex - tch| {embedding:e}, losses flex {:?} tch {:?}",
        flex.losses, tch.losses
    );
    assert!(
        embedding <= 1e-4,
        "{backbone} + {head}: embeddings differ by {embedding:e}"
    );
    if let (Some(a), Some(b)) = (&flex.maps, &tch.maps) {
        let maps = max_abs_diff(a, b);
        assert!(maps <= 1e-4, "{backbone} + {head}: maps differ by {maps:e}");
    }
    // The diversity loss is softplus(50 (cos - 0.5)): 50 times as steep in the embeddings as
    // the metric losses, so the same embedding difference moves it 50 times as far (gate head
    // on ResNet-18: 7e-6 apart in the embeddings, 1.5e-5 relative in the diversity loss, since
    // tch's BatchNorm normalises as x * scale + shift and flex's as (x - mean) * scale).
    for ((name, tolerance), (a, b)) in [
        ("margin", 1e-5),
        ("multi-similarity", 1e-5),
        ("diversity", 5e-5),
    ]
    .iter()
    .zip(flex.losses.iter().zip(&tch.losses))
    {
        let relative = (a - b).abs() / a.abs().max(1e-12);
        assert!(
            relative <= *tolerance,
            "{backbone} + {head}: {name} loss flex {a} vs tch {b} ({relative:e} relative)"
        );
    }
}

#[test]
fn convnet_small_with_attentive_grouping_agrees() {
    assert_same(BackboneKind::ConvnetSmall, HeadKind::Attentive, 28);
}

#[test]
fn resnet18_with_gate_and_attentive_heads_agrees() {
    assert_same(BackboneKind::Resnet18, HeadKind::Attentive, 64);
    assert_same(BackboneKind::Resnet18, HeadKind::Gate, 64);
}
