//! The training step and epoch of one run: class-balanced batches, the metric loss per group
//! plus the diversity loss, Adam on the model and on the loss's own parameters. A run, the
//! resume state and the step benchmark all drive this one type, so a benchmark times the
//! code a run executes.

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::adam::FusedAdam;
use super::config::RunConfig;
use super::embed::pixels_tensor;
use super::optim::{ModelGroups, model_learning_rates, model_optimizer};
use super::resume::{TrainState, WithinEpoch};
use crate::data::loader::for_each_batch;
use crate::data::{ClassBalancedSampler, ImageSet, View};
use crate::error::BadInput;
use crate::loss::{MarginTriplet, MetricLoss, diversity_loss};
use crate::model::layers::ParamInit;
use crate::model::{Embedder, EmbedderConfig};

/// Seed offset of the loss parameters' generator (distinct from the model's).
const LOSS_INIT_STREAM: u64 = 0x1055_0000_0000_0001;

/// The losses of one step, or their means over an epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Losses {
    /// metric + lambda_div * diversity.
    pub total: f64,
    pub metric: f64,
    pub diversity: f64,
}

/// The model, the loss's parameters, their optimisers and the epoch's rates.
pub struct Trainer {
    config: RunConfig,
    /// An autodiff device.
    device: Device,
    /// Whether steps keep the processors awake (keep_awake.rs).
    keep_awake: bool,
    // Options only between an optimiser step taking a module and giving it back.
    model: Option<Embedder>,
    criterion: Option<MetricLoss>,
    model_optimizer: ModuleOptimizer,
    loss_optimizer: ModuleOptimizer,
    groups: ModelGroups,
    /// The current epoch's rates and mining generator.
    rates: EpochRates,
}

/// What changes from epoch to epoch: the learning rates (MultiStepLR) and the generator the
/// loss mines with, seeded per epoch so an epoch replays identically after a resume.
struct EpochRates {
    model_lr: ModuleLearningRate,
    loss_lr: f64,
    mining: ChaCha8Rng,
}

impl EpochRates {
    /// The rates of `epoch` (0-based).
    fn of(config: &RunConfig, groups: &ModelGroups, epoch: usize) -> Self {
        let train = &config.train;
        Self {
            // Parameter ids survive a resume, so the groups are the same either way.
            model_lr: model_learning_rates(train, groups, epoch),
            loss_lr: config.loss.parameter_lr().unwrap_or(0.0) * train.lr_factor(epoch),
            mining: ChaCha8Rng::seed_from_u64(config.seed ^ 0x5EED_0000_0000 ^ (epoch as u64) << 8),
        }
    }
}

impl Trainer {
    /// A fresh trainer of `config` with the model `embedder` on `device` (a plain device;
    /// gradients are enabled here), for a training split of `classes` classes.
    pub fn new(
        config: &RunConfig,
        embedder: &EmbedderConfig,
        classes: usize,
        device: &Device,
    ) -> anyhow::Result<Self> {
        if let Err(invalid) = config.train.check_classes(classes) {
            return Err(BadInput::new(invalid.message).into());
        }
        let device = device.clone().autodiff();
        let model = embedder.init(&device)?;
        // The loss's own parameters (betas, proxies) draw from a generator of their own.
        let mut loss_init = ParamInit::new(config.seed ^ LOSS_INIT_STREAM, &device);
        let criterion = MetricLoss::new(&config.loss, config.loss_shape(classes), &mut loss_init);
        let groups = ModelGroups::of(&model);
        Ok(Self {
            config: config.clone(),
            model_optimizer: model_optimizer(&config.train, &groups),
            // The loss parameters (betas, proxies) have no weight decay, as in the authors' code.
            loss_optimizer: ModuleOptimizer::from(FusedAdam::new(0.0, config.train.adam_eps)),
            rates: EpochRates::of(config, &groups, 0),
            groups,
            model: Some(model),
            criterion: Some(criterion),
            keep_awake: super::keep_awake::wanted_on(&device),
            device,
        })
    }

    /// Sets the rates and the mining generator of `epoch` (0-based).
    pub fn begin_epoch(&mut self, epoch: usize) {
        self.rates = EpochRates::of(&self.config, &self.groups, epoch);
    }

    /// One optimisation step on a batch of `[n, c, h, w]` images and their dense labels.
    pub fn step(&mut self, images: Tensor<4>, labels: &[usize]) -> anyhow::Result<Losses> {
        self.step_mined(images, labels, None)
    }

    /// [`Self::step`] with the margin loss's triplets given per group instead of sampled:
    /// the recipe-parity test states the authors' step on the same triplets.
    pub fn step_on_triplets(
        &mut self,
        images: Tensor<4>,
        labels: &[usize],
        triplets: &[Vec<MarginTriplet>],
    ) -> anyhow::Result<Losses> {
        self.step_mined(images, labels, Some(triplets))
    }

    fn step_mined(
        &mut self,
        images: Tensor<4>,
        labels: &[usize],
        triplets: Option<&[Vec<MarginTriplet>]>,
    ) -> anyhow::Result<Losses> {
        let _awake = self.keep_awake.then(super::keep_awake::while_stepping);
        let model = self.model.take().expect("a model between steps");
        let criterion = self.criterion.take().expect("a loss between steps");
        let output = model.forward(images);
        let metric_loss = match triplets {
            None => criterion.forward(output.groups.clone(), labels, &mut self.rates.mining),
            Some(triplets) => {
                match criterion.forward_on_triplets(output.groups.clone(), labels, triplets) {
                    Ok(loss) => loss,
                    Err(error) => {
                        (self.model, self.criterion) = (Some(model), Some(criterion));
                        return Err(error);
                    }
                }
            }
        };
        let div_loss = diversity_loss(output.groups);
        let loss = metric_loss.clone() + div_loss.clone() * self.config.train.lambda_div;
        let values = Tensor::cat(vec![loss.clone(), metric_loss, div_loss], 0)
            .into_data()
            .try_into_vec::<f32>()
            .expect("float losses");
        let losses = Losses {
            total: f64::from(values[0]),
            metric: f64::from(values[1]),
            diversity: f64::from(values[2]),
        };
        if !losses.total.is_finite() {
            (self.model, self.criterion) = (Some(model), Some(criterion));
            bail!("the loss became {}", losses.total);
        }
        let mut grads = loss.backward();
        let model_grads = GradientsParams::from_module(&mut grads, &model);
        let loss_grads = GradientsParams::from_module(&mut grads, &criterion);
        // Moved through the optimisers, not cloned: unshared tensors update in place.
        self.model = Some(self.model_optimizer.step(
            self.rates.model_lr.clone(),
            model,
            model_grads,
        ));
        self.criterion = Some(
            self.loss_optimizer
                .step(self.rates.loss_lr, criterion, loss_grads),
        );
        Ok(losses)
    }

    /// The class-balanced sampler of `train` for this run's batches (built once per run).
    pub fn sampler(&self, train: &ImageSet) -> ClassBalancedSampler {
        let config = &self.config.train;
        ClassBalancedSampler::new(
            train.indices_by_class(),
            config.batch_size,
            config.samples_per_class,
        )
    }

    /// One epoch over `train` with the batches `sampler` (of `train`, see [`Self::sampler`])
    /// draws for this epoch: the mean losses.
    pub fn epoch(
        &mut self,
        epoch: usize,
        train: &ImageSet,
        sampler: &ClassBalancedSampler,
        progress: Option<&ProgressBar>,
    ) -> anyhow::Result<Losses> {
        self.epoch_from(epoch, train, sampler, progress, None, &mut |_, _| Ok(()))
    }

    /// [`Self::epoch`] continued from `start` (how far it got before a stop), calling
    /// `after_step` with how far it is after each step (to save the state, or to stop the run
    /// by returning an error).
    pub fn epoch_from(
        &mut self,
        epoch: usize,
        train: &ImageSet,
        sampler: &ClassBalancedSampler,
        progress: Option<&ProgressBar>,
        start: Option<&WithinEpoch>,
        after_step: &mut dyn FnMut(&Trainer, &WithinEpoch) -> anyhow::Result<()>,
    ) -> anyhow::Result<Losses> {
        self.begin_epoch(epoch);
        let config = &self.config.train;
        let batches = sampler.epoch(self.config.seed, epoch);
        let skip = start.map_or(0, |s| s.steps_done);
        let mut sum = Losses::default();
        if let Some(start) = start {
            let position = start
                .mining
                .parse()
                .context("the resume state's mining position")?;
            self.rates.mining.set_word_pos(position);
            sum = Losses {
                total: start.total,
                metric: start.metric,
                diversity: start.diversity,
            };
        }
        if let Some(bar) = progress {
            bar.set_length(batches.len() as u64);
            bar.set_position(skip as u64);
            bar.set_message(format!("epoch {}/{}", epoch + 1, config.epochs));
        }
        let (batch_size, seed) = (config.batch_size, self.config.seed);
        let view_of = |step: usize| View::Train {
            seed,
            epoch,
            position: (skip + step) * batch_size,
        };
        let shape = train.batch_shape(view_of(0));
        let rest = batches.get(skip..).unwrap_or_default();
        for_each_batch(train, rest, view_of, |step, batch, pixels| {
            let step = skip + step;
            let images = pixels_tensor(pixels, batch.len(), shape, &self.device);
            let labels: Vec<usize> = batch.iter().map(|&i| train.labels[i]).collect();
            let losses = self
                .step(images, &labels)
                .map_err(|e| e.context(format!("at epoch {} batch {}", epoch + 1, step + 1)))?;
            sum.total += losses.total;
            sum.metric += losses.metric;
            sum.diversity += losses.diversity;
            if let Some(bar) = progress {
                bar.inc(1);
            }
            let within = WithinEpoch {
                steps_done: step + 1,
                total: sum.total,
                metric: sum.metric,
                diversity: sum.diversity,
                mining: self.rates.mining.get_word_pos().to_string(),
            };
            after_step(self, &within)
        })?;
        let steps = batches.len() as f64;
        Ok(Losses {
            total: sum.total / steps,
            metric: sum.metric / steps,
            diversity: sum.diversity / steps,
        })
    }

    /// The (autodiff) device batches for [`Self::step`] go to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model as it is now.
    pub fn model(&self) -> &Embedder {
        self.model.as_ref().expect("a model between steps")
    }

    /// Waits for the device to finish queued work (for timing).
    pub fn sync(&self) -> anyhow::Result<()> {
        self.device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))
    }

    /// The parts of the resume state that the trainer owns.
    pub fn snapshot(&self) -> TrainState {
        // burn's running statistics (BatchNorm's) record the value of their last sync, which
        // lags the last training step until something syncs them; `valid` does (exactly: the
        // one pending update, divided by 1), as the evaluation after each epoch does.
        let _ = self.model().valid();
        TrainState {
            model: self.model().clone(),
            model_optimizer: self.model_optimizer.clone(),
            criterion: self.criterion.clone().expect("a loss between steps"),
            loss_optimizer: self.loss_optimizer.clone(),
        }
    }

    /// Continues from a saved state.
    pub fn restore(&mut self, state: TrainState) {
        self.model = Some(state.model);
        self.criterion = Some(state.criterion);
        self.model_optimizer = state.model_optimizer;
        self.loss_optimizer = state.loss_optimizer;
    }

    /// The optimiser a loaded model's state reattaches to.
    pub fn model_optimizer_for(&self, model: &Embedder) -> ModuleOptimizer {
        model_optimizer(&self.config.train, &ModelGroups::of(model))
    }
}
