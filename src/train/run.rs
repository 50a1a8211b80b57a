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
use super::resume::{self, RunProgress, WithinEpoch};
use super::trainer::{Losses, Trainer};
use crate::data::Splits;
use crate::eval::per_group::{per_group_recall, per_group_summary};
use crate::eval::{Metrics, clustering_metrics};

/// Where a run keeps its state, how often between steps, and what asks it to stop.
pub struct Checkpoints<'a> {
    /// The state after every epoch (and between steps, see `every`) goes here, and a later
    /// call resumes from the last one saved.
    pub dir: &'a Path,
    /// Also within epochs: after so many steps or minutes.
    pub every: Option<CheckpointEvery>,
    /// The signal that asked the run to stop, if one has: the run then saves its state after
    /// the step it is in and returns [`Stopped`].
    pub stop: fn() -> Option<usize>,
}

/// How often a run saves its state within an epoch (`--checkpoint-every 500` steps, `10m`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CheckpointEvery {
    Steps(usize),
    Minutes(f64),
}

impl std::str::FromStr for CheckpointEvery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?}: steps (500) or minutes (10m, 10min)");
        let minutes = text.strip_suffix("min").or_else(|| text.strip_suffix('m'));
        match minutes {
            Some(m) => match m.trim().parse::<f64>() {
                Ok(m) if m > 0.0 && m.is_finite() => Ok(Self::Minutes(m)),
                _ => Err(bad()),
            },
            None => match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Self::Steps(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl std::fmt::Display for CheckpointEvery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Steps(n) => write!(f, "{n}"),
            Self::Minutes(m) => write!(f, "{m}m"),
        }
    }
}

/// A run that a signal stopped after saving its state.
#[derive(Debug)]
pub struct Stopped {
    pub signal: usize,
    /// The epoch it was in (1-based) and its steps done.
    pub epoch: usize,
    pub steps_done: usize,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped by signal {} in epoch {} after step {}, its state saved",
            self.signal, self.epoch, self.steps_done
        )
    }
}

impl std::error::Error for Stopped {}

/// Trains `config` on `splits` on `device` (a plain device; gradients are enabled here),
/// keeping its state where `checkpoints` says and resuming from the last one saved there.
pub fn train_run(
    config: &RunConfig,
    weights: Option<&Path>,
    splits: &Splits,
    device: &Device,
    checkpoints: Option<&Checkpoints>,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<RunOutcome> {
    let embedder = config.embedder(splits.train.channels, weights);
    let mut trainer = Trainer::new(config, &embedder, splits.train.class_count(), device)?;
    let mut run = match checkpoints {
        Some(checkpoints) => resume_from(checkpoints.dir, &mut trainer)?,
        None => RunProgress::default(),
    };
    let sample = attention_sample(&splits.test);
    let sampler = trainer.sampler(&splits.train);
    for epoch in run.epochs_done..config.train.epochs {
        let started = Instant::now();
        let start = run.within.take();
        let losses = match checkpoints {
            None => trainer.epoch(epoch, &splits.train, &sampler, progress)?,
            Some(checkpoints) => {
                let mut saver = StepSaver::new(checkpoints, &mut run, epoch, start.as_ref());
                trainer.epoch_from(
                    epoch,
                    &splits.train,
                    &sampler,
                    progress,
                    start.as_ref(),
                    &mut |trainer, within| saver.after_step(trainer, within),
                )?
            }
        };
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
        if let Some(checkpoints) = checkpoints {
            resume::save(checkpoints.dir, &trainer.snapshot(), &run)?;
            if let Some(signal) = (checkpoints.stop)() {
                let steps_done = sampler.epoch(config.seed, epoch).len();
                let epoch = epoch + 1;
                return Err(Stopped {
                    signal,
                    epoch,
                    steps_done,
                }
                .into());
            }
        }
    }
    Ok(finish(run, config, splits, sample))
}

/// Saves the state between the steps of an epoch when [`Checkpoints::every`] says so or a
/// signal asks the run to stop (then returns [`Stopped`]).
struct StepSaver<'a> {
    checkpoints: &'a Checkpoints<'a>,
    run: &'a mut RunProgress,
    epoch: usize,
    /// Steps done and time at the last save (or the epoch's start).
    saved: (usize, Instant),
}

impl<'a> StepSaver<'a> {
    fn new(
        checkpoints: &'a Checkpoints<'a>,
        run: &'a mut RunProgress,
        epoch: usize,
        start: Option<&WithinEpoch>,
    ) -> Self {
        let steps = start.map_or(0, |s| s.steps_done);
        Self {
            checkpoints,
            run,
            epoch,
            saved: (steps, Instant::now()),
        }
    }

    fn after_step(&mut self, trainer: &Trainer, within: &WithinEpoch) -> anyhow::Result<()> {
        let signal = (self.checkpoints.stop)();
        let due = match self.checkpoints.every {
            Some(CheckpointEvery::Steps(n)) => within.steps_done - self.saved.0 >= n,
            Some(CheckpointEvery::Minutes(m)) => self.saved.1.elapsed().as_secs_f64() >= m * 60.0,
            None => false,
        };
        if signal.is_none() && !due {
            return Ok(());
        }
        self.run.within = Some(within.clone());
        let saved = resume::save(self.checkpoints.dir, &trainer.snapshot(), self.run);
        self.run.within = None;
        saved?;
        self.saved = (within.steps_done, Instant::now());
        match signal {
            Some(signal) => Err(Stopped {
                signal,
                epoch: self.epoch + 1,
                steps_done: within.steps_done,
            }
            .into()),
            None => Ok(()),
        }
    }
}

/// The trainer continued from the last complete epoch under `dir`, if there is one.
fn resume_from(dir: &Path, trainer: &mut Trainer) -> anyhow::Result<RunProgress> {
    let loaded = resume::load(dir, trainer.snapshot(), |model| {
        trainer.model_optimizer_for(model)
    })?;
    Ok(match loaded {
        Some((state, progress)) => {
            match &progress.within {
                None => tracing::info!("resuming after epoch {}", progress.epochs_done),
                Some(within) => tracing::info!(
                    "resuming after epoch {} and step {} of epoch {}",
                    progress.epochs_done,
                    within.steps_done,
                    progress.epochs_done + 1
                ),
            }
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

#[cfg(test)]
mod tests {
    use super::CheckpointEvery;

    #[test]
    fn checkpoint_every_reads_steps_or_minutes() {
        assert_eq!("500".parse(), Ok(CheckpointEvery::Steps(500)));
        assert_eq!("10m".parse(), Ok(CheckpointEvery::Minutes(10.0)));
        assert_eq!("2.5min".parse(), Ok(CheckpointEvery::Minutes(2.5)));
        for bad in ["0", "-3", "10s", "m", "0m", "ten"] {
            assert!(bad.parse::<CheckpointEvery>().is_err(), "{bad}");
        }
    }
}
