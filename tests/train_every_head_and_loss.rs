//! One epoch of ResNet-18 with every head and every loss on the synthetic dataset: each
//! combination trains without error or NaN and produces metrics in [0, 1].

use agml::data::{DatasetConfig, SyntheticConfig};
use agml::loss::{LossConfig, LossName};
use agml::model::{BackboneConfig, BackboneKind, HeadKind};
use agml::train::{RunConfig, TrainConfig, train_run};
use burn::tensor::Device;

fn config(head: HeadKind, loss: LossName) -> RunConfig {
    RunConfig {
        dataset: DatasetConfig::Synthetic(SyntheticConfig::default()),
        backbone: BackboneConfig {
            name: BackboneKind::Resnet18,
            pretrained: None,
            freeze_batchnorm: false,
            freeze_batchnorm_affine: false,
            transform_input: false,
        },
        head,
        loss: LossConfig::default_for(loss),
        groups: if head.has_groups() { 2 } else { 1 },
        embedding_size: 16,
        reduction: 8,
        seed: 3,
        train: TrainConfig {
            epochs: 1,
            batch_size: 8,
            samples_per_class: 2,
            recall_k: vec![1, 2],
            ..TrainConfig::default()
        }
        .settled(),
    }
}

#[test]
fn resnet18_trains_one_epoch_with_every_head_and_loss() {
    let device = Device::default();
    let splits = SyntheticConfig::default().splits();
    let mut failures = Vec::new();
    for head in HeadKind::ALL {
        for loss in LossName::ALL {
            let outcome = train_run(&config(head, loss), None, &splits, &device, None, None);
            match outcome {
                Ok(outcome) => {
                    let record = outcome.selected();
                    let ok = record.loss.is_finite()
                        && record.test.values().all(|v| (0.0..=1.0).contains(v))
                        && record.test.contains_key("recall@1")
                        && !outcome.checkpoint.is_empty();
                    if !ok {
                        failures.push(format!("{head} x {loss}: {record:?}"));
                    }
                }
                Err(error) => failures.push(format!("{head} x {loss}: {error:#}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
