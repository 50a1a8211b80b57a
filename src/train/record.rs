//! What training records: one line of history per epoch, and what a finished run produced.

use serde::{Deserialize, Serialize};

use crate::eval::Metrics;

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

impl EpochRecord {
    /// An epoch that trained without evaluation (at or before `eval_begin`).
    pub fn unevaluated(epoch: usize, losses: &super::trainer::Losses) -> EpochRecord {
        EpochRecord {
            epoch,
            loss: losses.total,
            metric_loss: losses.metric,
            diversity_loss: losses.diversity,
            val: Metrics::new(),
            test: Metrics::new(),
            interpretability: Metrics::new(),
            seconds: 0.0,
        }
    }

    /// False for an epoch trained without evaluation.
    pub fn evaluated(&self) -> bool {
        !self.test.is_empty()
    }
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
    /// Recall@K of each group's embedding alone at the selected epoch (empty for one group).
    pub per_group: Vec<Metrics>,
}

impl RunOutcome {
    /// The record of the selected epoch.
    pub fn selected(&self) -> &EpochRecord {
        &self.history[self.selected_epoch - 1]
    }
}
