//! One run from start to finish: a [`Trainer`] per epoch, validation and test evaluation after
//! each, the best epoch on validation kept, the state saved for a resume, and clustering
//! metrics of the selected epoch at the end.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use indicatif::ProgressBar;

use super::best::Best;
use super::config::RunConfig;
use super::embed::{attention_sample, evaluate};
use super::protocol::Protocol;
use super::record::{EpochRecord, RunOutcome};
use super::resume::{self, RunProgress};
use super::trainer::{Losses, Trainer};
use crate::data::Splits;
use crate::eval::per_group::{per_group_recall, per_group_summary};
use crate::eval::{Metrics, clustering_metrics};

/// Trains `config` on `splits` on `device` (a plain device; gradients are enabled here).
/// With `state_dir`, the state after every epoch is kept there and a later call resumes from
/// the last complete epoch.
pub fn train_run(
    config: &RunConfig,
    weights: Option<&Path>,
    splits: &Splits,
    device: &Device,
    state_dir: Option<&Path>,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<RunOutcome> {
    let embedder = config.embedder(splits.train.channels, weights);
    let mut trainer = Trainer::new(config, &embedder, splits.train.class_count(), device)?;
    let mut run = match state_dir {
        Some(dir) => resume_from(dir, &mut trainer)?,
        None => RunProgress::default(),
    };
    let sample = attention_sample(&splits.test);
    let sampler = trainer.sampler(&splits.train);
    for epoch in run.epochs_done..config.train.epochs {
        let started = Instant::now();
        let losses = trainer.epoch(epoch, &splits.train, &sampler, progress)?;
        let record = if config.train.evaluates(epoch + 1) {
            evaluate_epoch(
                &trainer, config, splits, &sample, device, epoch, &losses, &mut run,
            )?
        } else {
            EpochRecord::unevaluated(epoch + 1, &losses)
        };
        let record = EpochRecord {
            seconds: started.elapsed().as_secs_f64(),
            ..record
        };
        tracing::debug!(epoch = record.epoch, loss = record.loss, "epoch done");
        run.history.push(record);
        run.epochs_done = epoch + 1;
        if let Some(dir) = state_dir {
            resume::save(dir, &trainer.snapshot(), &run)?;
        }
    }
    Ok(finish(run, config, splits, sample))
}

/// The trainer continued from the last complete epoch under `dir`, if there is one.
fn resume_from(dir: &Path, trainer: &mut Trainer) -> anyhow::Result<RunProgress> {
    let loaded = resume::load(dir, trainer.snapshot(), |model| {
        trainer.model_optimizer_for(model)
    })?;
    Ok(match loaded {
        Some((state, progress)) => {
            tracing::info!("resuming after epoch {}", progress.epochs_done);
            trainer.restore(state);
            progress
        }
        None => RunProgress::default(),
    })
}

/// Validation (held-out protocol) and test metrics of the model after `epoch` (0-based);
/// offers the epoch to the keep-the-best strategy, scored on the protocol's selection split.
/// The record's `seconds` is left to the caller.
#[allow(clippy::too_many_arguments)]
fn evaluate_epoch(
    trainer: &Trainer,
    config: &RunConfig,
    splits: &Splits,
    sample: &[usize],
    device: &Device,
    epoch: usize,
    losses: &Losses,
    run: &mut RunProgress,
) -> anyhow::Result<EpochRecord> {
    let train = &config.train;
    let frozen = trainer.model().valid();
    let protocol = config.protocol();
    let val = match protocol {
        Protocol::HeldOut => evaluate(&frozen, &splits.val, None, &train.recall_k, &[], device)?.0,
        Protocol::TestSelected => Metrics::new(),
    };
    let (test, embedded, gallery) = evaluate(
        &frozen,
        &splits.test,
        splits.gallery.as_ref(),
        &train.recall_k,
        sample,
        device,
    )?;
    let score = match protocol {
        Protocol::HeldOut => val[&train.selection_metric],
        Protocol::TestSelected => test[&train.selection_metric],
    };
    let interpretability = embedded.interpretability.clone();
    run.best.offer(score, || {
        Ok(Best {
            score,
            epoch: epoch + 1,
            checkpoint: frozen.into_record().into_bytes()?.to_vec(),
            test_embeddings: embedded.embeddings,
            gallery_embeddings: gallery,
            embedding_dim: embedded.dim,
            attention_maps: embedded.sample_maps,
        })
    })?;
    Ok(EpochRecord {
        epoch: epoch + 1,
        loss: losses.total,
        metric_loss: losses.metric,
        diversity_loss: losses.diversity,
        val,
        test,
        interpretability,
        seconds: 0.0,
    })
}

/// Recall@K of each group of the selected epoch's test embeddings alone (none for one group).
fn per_group(best: &Best, config: &RunConfig, splits: &Splits) -> Vec<Metrics> {
    let shape = config.group_shape();
    if shape.groups < 2 {
        return Vec::new();
    }
    let gallery = (splits.gallery.as_ref())
        .map(|g| (best.gallery_embeddings.as_slice(), g.labels.as_slice()));
    per_group_recall(
        &best.test_embeddings,
        &splits.test.labels,
        gallery,
        shape.groups,
        shape.group_size,
        &config.train.recall_k,
    )
}

/// The outcome of a run whose epochs are done: clustering metrics and per-group Recall@K once,
/// on the selected epoch's test embeddings (k-means is the costly part of evaluation).
fn finish(run: RunProgress, config: &RunConfig, splits: &Splits, sample: Vec<usize>) -> RunOutcome {
    let best = run.best.best.expect("at least one epoch");
    let mut history = run.history;
    let clustering = clustering_metrics(
        &best.test_embeddings,
        best.embedding_dim,
        &splits.test.labels,
        config.seed,
    );
    let selected = &mut history[best.epoch - 1];
    selected.test.extend(clustering);
    let per_group = per_group(&best, config, splits);
    selected
        .interpretability
        .extend(per_group_summary(&per_group));
    RunOutcome {
        per_group,
        selected_epoch: best.epoch,
        history,
        checkpoint: best.checkpoint,
        test_embeddings: best.test_embeddings,
        gallery_embeddings: best.gallery_embeddings,
        embedding_dim: best.embedding_dim,
        test_labels: splits.test.labels.clone(),
        gallery_labels: splits
            .gallery
            .as_ref()
            .map_or_else(Vec::new, |g| g.labels.clone()),
        attention_sample: sample,
        attention_maps: best.attention_maps,
    }
}
