//! Time of one training step (forward, margin + diversity loss, backward, Adam) of an embedder
//! on random images: `train_step_bench BACKBONE HEAD SIZE BATCH [STEPS] [--backend flex|tch]
//! [--device cpu|cuda:N]`, e.g. `train_step_bench resnet50 attentive 224 32 3`. Prints seconds
//! per step after one warm-up, then the same as a JSON line (`make bench` reads it).

use std::time::Instant;

use agml::loss::{LossShape, MetricLoss, diversity_loss};
use agml::model::embedder::{Embedder, EmbedderSpec};
use agml::model::layers::ParamInit;
use agml::model::{BackboneKind, HeadKind};
use agml::train::Backend;
use agml::train::TrainConfig;
use agml::train::optim::{ModelGroups, model_learning_rates, model_optimizer};
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};
use rand::SeedableRng;

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_value(serde_json::Value::String(text.to_string())).unwrap_or_else(|_| {
        eprintln!("unknown name {text}");
        std::process::exit(2)
    })
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let mut option = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        let value = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        value
    };
    let backend: Backend = option("--backend")
        .unwrap_or_else(|| "flex".into())
        .parse()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let device_name = option("--device").unwrap_or_else(|| "cpu".into());
    if args.len() < 5 {
        eprintln!(
            "usage: train_step_bench BACKBONE HEAD SIZE BATCH [STEPS] [--backend flex|tch] [--device cpu|cuda:N]"
        );
        std::process::exit(2);
    }
    let backbone: BackboneKind = parse(&args[1]);
    let head: HeadKind = parse(&args[2]);
    let size: usize = args[3].parse().expect("SIZE");
    let batch: usize = args[4].parse().expect("BATCH");
    let steps: usize = args.get(5).map_or(3, |s| s.parse().expect("STEPS"));
    let groups = if head.has_groups() { 4 } else { 1 };
    let device = backend
        .device_named(&device_name)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
        .autodiff();
    let spec = EmbedderSpec {
        backbone,
        pretrained: None,
        freeze_batchnorm: false,
        head,
        in_channels: 3,
        groups,
        embedding_size: 512,
        reduction: 8,
        seed: 0,
    };
    let mut model = Embedder::new(&spec, &device).expect("model");
    let train = TrainConfig {
        epochs: 1,
        batch_size: batch,
        samples_per_class: 2,
        lr: 1e-5,
        weight_decay: 3e-3,
        head_lr: 1e-5,
        head_weight_decay: 3e-3,
        query_lr: 1e-5,
        query_weight_decay: 1e-3,
        lr_milestones: vec![],
        lr_gamma: 0.3,
        lambda_div: 0.02,
        recall_k: vec![1],
        selection_metric: "map@r".into(),
    };
    let model_groups = ModelGroups::of(&model);
    let mut optimizer = model_optimizer(&train, &model_groups);
    let lrs = model_learning_rates(&train, &model_groups, 0);
    let classes = batch / 2;
    let labels: Vec<usize> = (0..batch).map(|i| i / 2).collect();
    let shape = LossShape {
        groups,
        classes,
        group_size: 512 / groups,
    };
    let criterion = MetricLoss::new(
        &agml::loss::LossConfig::default_for(agml::loss::LossName::Margin),
        shape,
        &mut ParamInit::new(1, &device),
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut times = Vec::new();
    for step in 0..=steps {
        let images = Tensor::<4>::random(
            [batch, 3, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let start = Instant::now();
        let output = model.forward(images);
        let loss = criterion.forward(output.groups.clone(), &labels, &mut rng)
            + diversity_loss(output.groups) * 0.02;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lrs.clone(), model, grads);
        // Wait for the backend to finish the step.
        device.sync().expect("device sync");
        if step > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{backbone} + {head} (P = {groups}), {size}x{size}, batch {batch}, {backend} on {device_name}, {} threads: {mean:.3} s/step over {} steps",
        rayon::current_num_threads(),
        times.len()
    );
    println!(
        "{}",
        serde_json::json!({ "seconds_per_step": mean, "steps": times.len(), "backend": backend.to_string() })
    );
}
