//! The training loop of one run: class-balanced batches, margin + diversity loss, Adam, and
//! per-epoch validation that selects the checkpoint whose test metrics are reported.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::optim::{ModelGroups, model_learning_rates, model_optimizer};
use super::resume;
use crate::data::loader::for_each_batch;
use crate::data::{ClassBalancedSampler, ImageSet, Splits, View};
use crate::error::BadInput;
use crate::eval::interpretability::Interpretability;
use crate::eval::{Metrics, Vectors, clustering_metrics, query_gallery_metrics, retrieval_metrics};
use crate::loss::{LossShape, MetricLoss, diversity_loss};
use crate::model::embedder::{Embedder, EmbedderSpec};
use crate::model::layers::ParamInit;

/// Seed offset of the loss parameters' generator (distinct from the model's).
const LOSS_INIT_STREAM: u64 = 0x1055_0000_0000_0001;
/// Images per forward pass when embedding a whole set.
const EMBED_BATCH: usize = 500;
/// Test images whose attention maps each run keeps (for figures without a forward pass).
const ATTENTION_SAMPLE: usize = 8;

/// One epoch of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub loss: f64,
    pub metric_loss: f64,
    pub diversity_loss: f64,
    pub val: Metrics,
    pub test: Metrics,
    /// Group cosine, attention overlap and entropy on the test set (heads with groups/maps).
    #[serde(default)]
    pub interpretability: Metrics,
    pub seconds: f64,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// 1-based epoch with the best validation `selection_metric`.
    pub selected_epoch: usize,
    pub history: Vec<EpochRecord>,
    /// Burnpack bytes of the embedder at the selected epoch.
    pub checkpoint: Vec<u8>,
    /// Test embeddings at the selected epoch, `[n, dim]`, with their dense labels.
    pub test_embeddings: Vec<f32>,
    pub embedding_dim: usize,
    pub test_labels: Vec<usize>,
    /// Gallery embeddings and labels at the selected epoch (query-vs-gallery datasets; empty
    /// otherwise).
    pub gallery_embeddings: Vec<f32>,
    pub gallery_labels: Vec<usize>,
    /// Test images (indices) whose attention maps were kept, and the maps `[k, P, h, w]` at the
    /// selected epoch (heads with maps).
    pub attention_sample: Vec<usize>,
    pub attention_maps: Option<(Vec<f32>, [usize; 4])>,
}

impl RunOutcome {
    /// The record of the selected epoch.
    pub fn selected(&self) -> &EpochRecord {
        &self.history[self.selected_epoch - 1]
    }
}

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
    let train_device = device.clone().autodiff();
    let spec = EmbedderSpec {
        backbone: config.backbone.name,
        pretrained: weights.map(Path::to_path_buf),
        freeze_batchnorm: config.backbone.freeze_batchnorm,
        head: config.head,
        in_channels: splits.train.channels,
        groups: config.groups,
        embedding_size: config.embedding_size,
        reduction: config.reduction,
        seed: config.seed,
    };
    let mut model = Embedder::new(&spec, &train_device)?;
    let groups = if config.head.has_groups() {
        config.groups
    } else {
        1
    };
    let shape = LossShape {
        groups,
        classes: splits.train.class_count(),
        group_size: config.group_size(),
    };
    // The loss's own parameters (betas, proxies) draw from a generator of their own.
    let mut loss_init = ParamInit::new(config.seed ^ LOSS_INIT_STREAM, &train_device);
    let mut criterion = MetricLoss::new(&config.loss, shape, &mut loss_init);
    let loss_lr = config.loss.parameter_lr().unwrap_or(0.0);

    let loss_optim = AdamConfig::new().init();
    let build_optimizer =
        |model: &Embedder| model_optimizer(&config.train, &ModelGroups::of(model));
    let resumed = match state_dir {
        Some(dir) => resume::load(
            dir,
            model.clone(),
            criterion.clone(),
            build_optimizer,
            loss_optim.clone(),
        )?,
        None => None,
    };
    let (mut model_optim, mut loss_optim, mut history, mut best, first_epoch) = match resumed {
        Some(state) => {
            tracing::info!("resuming after epoch {}", state.epochs_done);
            model = state.model;
            criterion = state.criterion;
            (
                state.model_optimizer,
                state.loss_optimizer,
                state.history,
                state.best,
                state.epochs_done,
            )
        }
        None => (build_optimizer(&model), loss_optim, Vec::new(), None, 0),
    };
    // Parameter ids survive a resume, so the groups are the same either way.
    let groups_of_model = ModelGroups::of(&model);

    let train = &config.train;
    let classes_per_batch = train.batch_size / train.samples_per_class;
    if classes_per_batch > splits.train.class_count() {
        return Err(BadInput::new(format!(
            "a batch of {} images with {} per class needs {classes_per_batch} classes, but the training split has {}",
            train.batch_size,
            train.samples_per_class,
            splits.train.class_count()
        ))
        .into());
    }
    let sampler = ClassBalancedSampler::new(
        splits.train.indices_by_class(),
        train.batch_size,
        train.samples_per_class,
    );
    let sample = attention_sample(&splits.test);
    let train_shape = splits.train.batch_shape(View::Train {
        seed: 0,
        epoch: 0,
        position: 0,
    });

    for epoch in first_epoch..train.epochs {
        let started = Instant::now();
        let batches = sampler.epoch(config.seed, epoch);
        // Mining draws are seeded per epoch too, so an epoch replays identically.
        let mut mining_rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ 0x5EED_0000_0000 ^ (epoch as u64) << 8);
        if let Some(bar) = progress {
            bar.set_length(batches.len() as u64);
            bar.set_position(0);
            bar.set_message(format!("epoch {}/{}", epoch + 1, train.epochs));
        }
        let model_lr = model_learning_rates(train, &groups_of_model, epoch);
        let loss_lr = loss_lr * train.lr_factor(epoch);
        let (mut loss_sum, mut metric_sum, mut diversity_sum) = (0.0, 0.0, 0.0);
        let batch_size = train.batch_size;
        let seed = config.seed;
        let view_of = |step: usize| View::Train {
            seed,
            epoch,
            position: step * batch_size,
        };
        // The loop's closure owns the model between steps (the optimiser consumes it).
        let mut model_slot = Some(model);
        let mut criterion_slot = Some(criterion);
        for_each_batch(&splits.train, &batches, view_of, |step, batch, pixels| {
            let (model, criterion) = (
                model_slot.as_ref().expect("set"),
                criterion_slot.as_ref().expect("set"),
            );
            let images = pixels_tensor(pixels, batch.len(), train_shape, &train_device);
            let labels: Vec<usize> = batch.iter().map(|&i| splits.train.labels[i]).collect();
            let output = model.forward(images);
            let metric_loss = criterion.forward(output.groups.clone(), &labels, &mut mining_rng);
            let div_loss = diversity_loss(output.groups);
            let loss = metric_loss.clone() + div_loss.clone() * train.lambda_div;
            let values = Tensor::cat(vec![loss.clone(), metric_loss, div_loss], 0)
                .into_data()
                .try_into_vec::<f32>()
                .expect("float losses");
            if !values[0].is_finite() {
                bail!(
                    "the loss became {} at epoch {} batch {}",
                    values[0],
                    epoch + 1,
                    step + 1
                );
            }
            loss_sum += f64::from(values[0]);
            metric_sum += f64::from(values[1]);
            diversity_sum += f64::from(values[2]);

            let mut grads = loss.backward();
            let model_grads = GradientsParams::from_module(&mut grads, model);
            let loss_grads = GradientsParams::from_module(&mut grads, criterion);
            // Moved through the optimisers, not cloned: unshared tensors update in place.
            let stepped = model_optim.step(
                model_lr.clone(),
                model_slot.take().expect("set"),
                model_grads,
            );
            model_slot = Some(stepped);
            let stepped = loss_optim.step(loss_lr, criterion_slot.take().expect("set"), loss_grads);
            criterion_slot = Some(stepped);
            if let Some(bar) = progress {
                bar.inc(1);
            }
            Ok(())
        })?;
        model = model_slot.expect("set");
        criterion = criterion_slot.expect("set");

        let frozen = model.valid();
        let (val, _) = evaluate(&frozen, &splits.val, None, &train.recall_k, &[], device)?;
        let (test, embedded) = evaluate(
            &frozen,
            &splits.test,
            splits.gallery.as_ref(),
            &train.recall_k,
            &sample,
            device,
        )?;
        let steps = batches.len() as f64;
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: loss_sum / steps,
            metric_loss: metric_sum / steps,
            diversity_loss: diversity_sum / steps,
            val,
            test,
            interpretability: embedded.interpretability,
            seconds: started.elapsed().as_secs_f64(),
        };
        let score = record.val[&train.selection_metric];
        tracing::debug!(
            epoch = record.epoch,
            loss = record.loss,
            selection = score,
            "epoch done"
        );
        // Strictly better only: ties keep the earlier epoch.
        if best.as_ref().is_none_or(|b| score > b.score) {
            best = Some(Best {
                score,
                epoch: record.epoch,
                checkpoint: frozen.into_record().into_bytes()?.to_vec(),
                test_embeddings: embedded.test,
                gallery_embeddings: embedded.gallery,
                embedding_dim: embedded.dim,
                attention_maps: embedded.sample_maps,
            });
        }
        history.push(record);
        if let Some(dir) = state_dir {
            let state = resume::TrainState {
                model: model.clone(),
                model_optimizer: model_optim.clone(),
                criterion: criterion.clone(),
                loss_optimizer: loss_optim.clone(),
                epochs_done: epoch + 1,
                history: history.clone(),
                best: best.clone(),
            };
            resume::save(dir, &state)?;
        }
    }
    let best = best.expect("at least one epoch");
    // Clustering metrics once, on the selected epoch's test embeddings (k-means is the
    // costly part of evaluation).
    let clustering = clustering_metrics(
        &best.test_embeddings,
        best.embedding_dim,
        &splits.test.labels,
        config.seed,
    );
    history[best.epoch - 1].test.extend(clustering);
    Ok(RunOutcome {
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
    })
}

/// The selected epoch so far.
#[derive(Debug, Clone)]
pub struct Best {
    pub score: f64,
    pub epoch: usize,
    /// Burnpack bytes of the embedder at that epoch.
    pub checkpoint: Vec<u8>,
    pub test_embeddings: Vec<f32>,
    /// Empty without a gallery.
    pub gallery_embeddings: Vec<f32>,
    pub embedding_dim: usize,
    /// Attention maps of the attention sample, `[k, P, h, w]` (heads with maps).
    pub attention_maps: Option<(Vec<f32>, [usize; 4])>,
}

fn pixels_tensor(pixels: Vec<f32>, n: usize, shape: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(pixels, [n, shape[0], shape[1], shape[2]]),
        device,
    )
}

/// What one pass over a set (test view) gives.
pub struct Embedding {
    /// `[n, P * d]` row-major (groups concatenated).
    pub embeddings: Vec<f32>,
    pub dim: usize,
    /// Group cosine, attention overlap and entropy over the set (see eval::interpretability).
    pub interpretability: Metrics,
    /// The maps of the images at `sample` (in that order), `[k, P, h, w]`, for heads with maps.
    pub sample_maps: Option<(Vec<f32>, [usize; 4])>,
}

/// One pass of `model` over every image of `set` (test view); the maps of the images at
/// `sample` are kept.
pub fn embed(
    model: &Embedder,
    set: &ImageSet,
    sample: &[usize],
    device: &Device,
) -> anyhow::Result<Embedding> {
    let shape = set.batch_shape(View::Test);
    let indices: Vec<usize> = (0..set.len()).collect();
    let chunks: Vec<Vec<usize>> = indices.chunks(EMBED_BATCH).map(<[usize]>::to_vec).collect();
    let mut out = Vec::new();
    let mut dim = 0;
    let mut interpretability = Interpretability::default();
    let mut kept: Vec<(usize, Vec<f32>)> = Vec::new();
    let mut map_dims = [0usize; 3];
    for_each_batch(
        set,
        &chunks,
        |_| View::Test,
        |_, chunk, pixels| {
            let output = model.forward(pixels_tensor(pixels, chunk.len(), shape, device));
            let [n, p, d] = output.groups.dims();
            dim = p * d;
            let groups = output
                .groups
                .reshape([n, p * d])
                .into_data()
                .try_into_vec::<f32>()
                .expect("float embeddings");
            let maps = output.maps.map(|m| {
                let [_, _, h, w] = m.dims();
                map_dims = [p, h, w];
                m.into_data().try_into_vec::<f32>().expect("float maps")
            });
            let positions = map_dims[1] * map_dims[2];
            interpretability.add(&groups, p, d, maps.as_deref().map(|m| (m, positions)));
            if let Some(maps) = &maps {
                for (k, &i) in chunk.iter().enumerate() {
                    if sample.contains(&i) {
                        let len = p * positions;
                        kept.push((i, maps[k * len..(k + 1) * len].to_vec()));
                    }
                }
            }
            out.extend(groups);
            Ok(())
        },
    )?;
    let sample_maps = (!kept.is_empty()).then(|| {
        let ordered: Vec<f32> = sample
            .iter()
            .filter_map(|i| kept.iter().find(|(j, _)| j == i))
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        let [p, h, w] = map_dims;
        (ordered, [sample.len(), p, h, w])
    });
    Ok(Embedding {
        embeddings: out,
        dim,
        interpretability: interpretability.finish(),
        sample_maps,
    })
}

/// The images whose attention maps a run keeps: the first test image of each of the first
/// eight test classes (the same images in every run on a dataset).
pub fn attention_sample(set: &ImageSet) -> Vec<usize> {
    set.indices_by_class()
        .into_iter()
        .filter_map(|members| members.first().copied())
        .take(ATTENTION_SAMPLE)
        .collect()
}

/// Embeddings of an evaluation: the test (or query) set and the gallery, if any.
struct Embedded {
    test: Vec<f32>,
    gallery: Vec<f32>,
    dim: usize,
    interpretability: Metrics,
    sample_maps: Option<(Vec<f32>, [usize; 4])>,
}

/// Retrieval metrics of `model` on `set` (leave-one-out, or each image of `set` against
/// `gallery`), and the embeddings.
fn evaluate(
    model: &Embedder,
    set: &ImageSet,
    gallery: Option<&ImageSet>,
    ks: &[usize],
    sample: &[usize],
    device: &Device,
) -> anyhow::Result<(Metrics, Embedded)> {
    let Embedding {
        embeddings: test,
        dim,
        interpretability,
        sample_maps,
    } = embed(model, set, sample, device)?;
    let (metrics, gallery) = match gallery {
        None => (retrieval_metrics(&test, dim, &set.labels, ks), Vec::new()),
        Some(gallery_set) => {
            let gallery = embed(model, gallery_set, &[], device)?.embeddings;
            let metrics = query_gallery_metrics(
                Vectors::new(&test, dim),
                &set.labels,
                Vectors::new(&gallery, dim),
                &gallery_set.labels,
                ks,
            );
            (metrics, gallery)
        }
    };
    Ok((
        metrics,
        Embedded {
            test,
            gallery,
            dim,
            interpretability,
            sample_maps,
        },
    ))
}
