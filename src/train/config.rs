//! The effective configuration of one run: what the cell hash covers.

use serde::{Deserialize, Serialize};

use super::Protocol;
use crate::data::DatasetConfig;
use std::path::Path;

use crate::error::Invalid;
use crate::loss::{LossConfig, LossShape};
use crate::model::{BackboneConfig, EmbedderConfig, GroupShape, HeadKind};

/// Everything that determines what a run computes (and nothing about where or how it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetConfig,
    pub backbone: BackboneConfig,
    pub head: HeadKind,
    pub loss: LossConfig,
    /// Number of groups P.
    pub groups: usize,
    /// Total embedding size D; each group has D / P dimensions.
    pub embedding_size: usize,
    /// Channel reduction r of the attentive head's keys (C -> C / r).
    pub reduction: usize,
    pub seed: u64,
    pub train: TrainConfig,
}

impl TrainConfig {
    /// The factor of every learning rate in `epoch` (0-based): gamma^(milestones passed), as
    /// PyTorch's MultiStepLR stepped once per epoch.
    pub fn lr_factor(&self, epoch: usize) -> f64 {
        let passed = self.lr_milestones.iter().filter(|&&m| m <= epoch).count();
        self.lr_gamma.powi(passed as i32)
    }
}

impl RunConfig {
    /// The protocol this run is evaluated under.
    pub fn protocol(&self) -> Protocol {
        Protocol::of(self.dataset.validation())
    }

    /// The groups the head produces (P and d = D / P).
    pub fn group_shape(&self) -> GroupShape {
        GroupShape::of(self.head, self.groups, self.embedding_size)
    }

    /// The embedder this run trains, for images of `in_channels` channels, its backbone
    /// started from `weights` when the matrix names a state dict.
    pub fn embedder(&self, in_channels: usize, weights: Option<&Path>) -> EmbedderConfig {
        EmbedderConfig {
            backbone: self.backbone.name,
            pretrained: weights.map(Path::to_path_buf),
            freeze_batchnorm: self.backbone.frozen_batchnorm(),
            transform_input: self.backbone.transform_input,
            head: self.head,
            in_channels,
            groups: self.group_shape(),
            reduction: self.reduction,
            seed: self.seed,
        }
    }

    /// The metric loss's shape over a training split of `classes` classes.
    pub fn loss_shape(&self, classes: usize) -> LossShape {
        let groups = self.group_shape();
        LossShape {
            groups: groups.groups,
            classes,
            group_size: groups.group_size,
        }
    }
}

/// Optimisation and evaluation settings: the one place each training setting is declared,
/// with its default. A matrix's settings tables (`[defaults]`, `[datasets.<name>.train]`)
/// deserialise into it; a new option is a new field here (and a rule in [`Self::check`] if it
/// has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Images per class in a batch (m); a batch holds batch_size / m classes.
    pub samples_per_class: usize,
    /// Adam learning rate of the backbone.
    pub lr: f64,
    /// L2 weight decay of the backbone (Adam, PyTorch semantics).
    pub weight_decay: f64,
    /// Learning rate of the head (keys, values, projections); `lr` unless set.
    pub head_lr: Option<f64>,
    /// Weight decay of the head; `weight_decay` unless set.
    pub head_weight_decay: Option<f64>,
    /// Learning rate of the attentive queries; the head's unless set.
    pub query_lr: Option<f64>,
    /// Weight decay of the attentive queries; the head's unless set.
    pub query_weight_decay: Option<f64>,
    /// Epochs (0-based) at whose start every learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    pub lr_gamma: f64,
    /// Weight of the diversity loss.
    pub lambda_div: f64,
    /// Adam's epsilon, of every optimiser (PyTorch's and the authors' 1e-8; burn's own default
    /// is 1e-5, which damps the steps of parameters with small gradients such as the queries).
    #[serde(skip_serializing_if = "is_default_adam_eps")]
    pub adam_eps: f64,
    /// The K of Recall@K.
    pub recall_k: Vec<usize>,
    /// The metric that selects the epoch (`map@r`, `r_precision` or `recall@K`), on the
    /// validation split, or on the test set under the test-selected protocol.
    pub selection_metric: String,
    /// Epochs 1..=eval_begin train without evaluation; the later ones are evaluated and can
    /// be selected (the authors' `epoch > eval_begin`: 49 CUB, 69 Cars, 80 SOP).
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_begin: usize,
}

// Left out of the hash at 0 (every epoch evaluated, as before the setting existed).
fn is_zero(n: &usize) -> bool {
    *n == 0
}

const DEFAULT_ADAM_EPS: f64 = 1e-8;

// The default stays out of the hash, so cells keep their hash (semantics 5 made 1e-8 the
// default; runs made before with burn's 1e-5 are stale).
fn is_default_adam_eps(eps: &f64) -> bool {
    *eps == DEFAULT_ADAM_EPS
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 80,
            samples_per_class: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            head_lr: None,
            head_weight_decay: None,
            query_lr: None,
            query_weight_decay: None,
            lr_milestones: Vec::new(),
            lr_gamma: 0.3,
            lambda_div: 0.02,
            adam_eps: DEFAULT_ADAM_EPS,
            recall_k: vec![1, 2, 4, 8],
            // MAP@R, as "A Metric Learning Reality Check" recommends.
            selection_metric: "map@r".into(),
            eval_begin: 0,
        }
    }
}

impl TrainConfig {
    pub fn head_lr(&self) -> f64 {
        self.head_lr.unwrap_or(self.lr)
    }

    pub fn head_weight_decay(&self) -> f64 {
        self.head_weight_decay.unwrap_or(self.weight_decay)
    }

    pub fn query_lr(&self) -> f64 {
        self.query_lr.unwrap_or(self.head_lr())
    }

    pub fn query_weight_decay(&self) -> f64 {
        self.query_weight_decay.unwrap_or(self.head_weight_decay())
    }

    /// The configuration as a cell stores and hashes it: inherited rates spelled out (so
    /// writing a default out changes no hash) and milestones sorted once.
    pub fn settled(mut self) -> Self {
        self.head_lr = Some(self.head_lr());
        self.head_weight_decay = Some(self.head_weight_decay());
        self.query_lr = Some(self.query_lr());
        self.query_weight_decay = Some(self.query_weight_decay());
        self.lr_milestones.sort_unstable();
        self.lr_milestones.dedup();
        self
    }

    /// The rules every training configuration keeps, whatever the dataset.
    pub fn check(&self) -> Result<(), Invalid> {
        for (key, value) in [
            (&["epochs"], self.epochs),
            (&["batch_size"], self.batch_size),
            (&["samples_per_class"], self.samples_per_class),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, format!("{} must be at least 1", key[0])));
            }
        }
        let rates: [(&'static [&'static str], Option<f64>); 8] = [
            (&["lr"], Some(self.lr)),
            (&["weight_decay"], Some(self.weight_decay)),
            (&["head_lr"], self.head_lr),
            (&["head_weight_decay"], self.head_weight_decay),
            (&["query_lr"], self.query_lr),
            (&["query_weight_decay"], self.query_weight_decay),
            (&["lr_gamma"], Some(self.lr_gamma)),
            (&["lambda_div"], Some(self.lambda_div)),
        ];
        for (key, value) in rates {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(Invalid::new(
                    key,
                    format!("{} must be a finite number >= 0", key[0]),
                ));
            }
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return Err(Invalid::new(
                &["adam_eps"],
                "adam_eps must be a finite number > 0",
            ));
        }
        if self.recall_k.is_empty() || self.recall_k.contains(&0) {
            return Err(Invalid::new(
                &["recall_k"],
                "recall_k must list at least one K >= 1",
            ));
        }
        let recall_names: Vec<String> = self
            .recall_k
            .iter()
            .map(|k| format!("recall@{k}"))
            .collect();
        let selection = &self.selection_metric;
        if selection != "map@r" && selection != "r_precision" && !recall_names.contains(selection) {
            return Err(Invalid::new(
                &["selection_metric"],
                format!(
                    "selection_metric `{selection}` is not computed (choose map@r, r_precision or one of {})",
                    recall_names.join(", ")
                ),
            ));
        }
        if self.eval_begin >= self.epochs {
            return Err(Invalid::new(
                &["eval_begin", "epochs"],
                format!(
                    "eval_begin {} leaves no epoch to evaluate out of {} (epochs after eval_begin are evaluated)",
                    self.eval_begin, self.epochs
                ),
            ));
        }
        if !self.batch_size.is_multiple_of(self.samples_per_class) {
            return Err(Invalid::new(
                &["batch_size", "samples_per_class"],
                format!(
                    "batch_size {} is not a multiple of samples_per_class {}",
                    self.batch_size, self.samples_per_class
                ),
            ));
        }
        Ok(())
    }

    /// True when `epoch` (1-based) is evaluated.
    pub fn evaluates(&self, epoch: usize) -> bool {
        epoch > self.eval_begin
    }

    /// Classes one batch draws from.
    pub fn classes_per_batch(&self) -> usize {
        self.batch_size / self.samples_per_class
    }

    /// A batch must find its classes in a training split of `classes`.
    pub fn check_classes(&self, classes: usize) -> Result<(), Invalid> {
        let needed = self.classes_per_batch();
        if needed > classes {
            return Err(Invalid::new(
                &["batch_size", "samples_per_class"],
                format!(
                    "a batch of {} images with {} per class needs {needed} classes, but the training split has {classes}",
                    self.batch_size, self.samples_per_class
                ),
            ));
        }
        Ok(())
    }
}

/// The settings of a cell that the matrix's settings tables set beside [`TrainConfig`] but a
/// run configuration holds at its top level (the hashed layout is older than the tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Channel reduction r of the attentive head's keys (C -> C / r).
    pub reduction: usize,
    /// Total embedding size D (when the matrix has no `embedding_size` axis).
    pub embedding_size: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            reduction: 8,
            embedding_size: 64,
        }
    }
}

impl ModelSettings {
    pub fn check(&self) -> Result<(), Invalid> {
        if self.reduction == 0 {
            return Err(Invalid::new(&["reduction"], "reduction must be at least 1"));
        }
        if self.embedding_size == 0 {
            return Err(Invalid::new(
                &["embedding_size"],
                "embedding_size must be at least 1",
            ));
        }
        Ok(())
    }
}
