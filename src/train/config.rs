//! The effective configuration of one run: what the cell hash covers.

use serde::{Deserialize, Serialize};

use crate::data::DatasetConfig;
use crate::loss::LossConfig;
use crate::model::{BackboneConfig, HeadKind};

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
    /// Per-group embedding size d = D / P (integer division, as in the paper).
    pub fn group_size(&self) -> usize {
        self.embedding_size / self.groups
    }
}

/// Optimisation and evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pub head_lr: f64,
    /// Weight decay of the head; `weight_decay` unless set.
    pub head_weight_decay: f64,
    /// Learning rate of the attentive queries; `head_lr` unless set.
    pub query_lr: f64,
    /// Weight decay of the attentive queries; `head_weight_decay` unless set.
    pub query_weight_decay: f64,
    /// Epochs (0-based) at whose start every learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    pub lr_gamma: f64,
    /// Weight of the diversity loss.
    pub lambda_div: f64,
    /// The K of Recall@K.
    pub recall_k: Vec<usize>,
    /// The validation metric that selects the epoch (`map@r`, `r_precision` or `recall@K`).
    pub selection_metric: String,
}

/// Built-in defaults under every matrix's `[defaults]`.
pub mod defaults {
    pub const EPOCHS: usize = 5;
    pub const BATCH_SIZE: usize = 80;
    pub const SAMPLES_PER_CLASS: usize = 16;
    pub const LR: f64 = 1e-3;
    pub const WEIGHT_DECAY: f64 = 1e-4;
    pub const LAMBDA_DIV: f64 = 0.02;
    pub const REDUCTION: usize = 8;
    pub const EMBEDDING_SIZE: usize = 64;
    pub const RECALL_K: [usize; 4] = [1, 2, 4, 8];
    pub const LR_GAMMA: f64 = 0.3;
    /// MAP@R, as "A Metric Learning Reality Check" recommends.
    pub const SELECTION_METRIC: &str = "map@r";
}
