//! Time of one training step of a run (`Trainer::step`: forward, margin + diversity loss,
//! backward, Adam on the model and on the loss's betas) on random images:
//! `train_step_bench BACKBONE HEAD SIZE BATCH [STEPS] [--backend flex|tch] [--device cpu|cuda:N]`,
//! e.g. `train_step_bench resnet50 attentive 224 32 3`. Prints seconds per step after one
//! warm-up, then the same as a JSON line (`make bench` reads it).

use std::time::Instant;

use agml::data::{DatasetConfig, SyntheticConfig};
use agml::loss::{LossConfig, LossName};
use agml::model::{BackboneConfig, BackboneKind, HeadKind};
use agml::schedule::on_worker;
use agml::train::{Backend, RunConfig, TrainConfig, Trainer};
use burn::tensor::{Distribution, Tensor};
use clap::Parser;

/// One step of the authors' recipe (ResNet-50, P = 4, margin loss, 2 images per class).
#[derive(Parser)]
struct Args {
    #[arg(value_enum)]
    backbone: BackboneKind,
    #[arg(value_enum)]
    head: HeadKind,
    /// Image side.
    size: usize,
    batch: usize,
    /// Timed steps (after one warm-up step).
    #[arg(default_value_t = 3)]
    steps: usize,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn config(args: &Args) -> RunConfig {
    RunConfig {
        dataset: DatasetConfig::Synthetic(SyntheticConfig::default()),
        backbone: BackboneConfig {
            name: args.backbone,
            pretrained: None,
            freeze_batchnorm: false,
            freeze_batchnorm_affine: false,
            transform_input: false,
        },
        head: args.head,
        loss: LossConfig::default_for(LossName::Margin),
        groups: if args.head.has_groups() { 4 } else { 1 },
        embedding_size: 512,
        reduction: 8,
        seed: 0,
        train: TrainConfig {
            epochs: 1,
            batch_size: args.batch,
            samples_per_class: 2,
            lr: 1e-5,
            weight_decay: 3e-3,
            query_weight_decay: Some(1e-3),
            ..TrainConfig::default()
        }
        .settled(),
    }
}

fn main() -> anyhow::Result<()> {
    // As `agml`'s main does: the step runs with the same malloc settings.
    agml::allocator::keep_freed_memory();
    // Where `agml run` trains a cell: on a worker of rayon's pool.
    on_worker(run)
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = config(&args);
    let device = args.backend.device_named(&args.device)?;
    let classes = args.batch / 2;
    let mut trainer = Trainer::new(&config, &config.embedder(3, None), classes, &device)?;
    let labels: Vec<usize> = (0..args.batch).map(|i| i / 2).collect();
    let mut times = Vec::new();
    for step in 0..=args.steps {
        let images = Tensor::<4>::random(
            [args.batch, 3, args.size, args.size],
            Distribution::Normal(0.0, 1.0),
            trainer.device(),
        );
        let start = Instant::now();
        trainer.step(images, &labels)?;
        // Wait for the backend to finish the step.
        trainer.sync()?;
        if step > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let (size, backend) = (args.size, args.backend);
    println!(
        "{} + {} (P = {}), {size}x{size}, batch {}, {backend} on {}, {} threads: {mean:.3} s/step over {} steps",
        args.backbone,
        args.head,
        config.group_shape().groups,
        args.batch,
        args.device,
        rayon::current_num_threads(),
        times.len()
    );
    println!(
        "{}",
        serde_json::json!({ "seconds_per_step": mean, "steps": times.len(), "backend": backend.to_string() })
    );
    Ok(())
}
