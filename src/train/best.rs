//! Keep-the-best checkpointing: the epoch with the highest validation score is the one a run
//! reports (selection on validation, as "A Metric Learning Reality Check" asks).

/// The selected epoch so far and what the run keeps of it.
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

/// The strategy: a new epoch replaces the kept one only when strictly better, so ties keep
/// the earlier epoch.
#[derive(Debug, Clone, Default)]
pub struct KeepBest {
    pub best: Option<Best>,
}

impl KeepBest {
    /// True when `score` would replace the kept epoch.
    pub fn improves(&self, score: f64) -> bool {
        self.best.as_ref().is_none_or(|b| score > b.score)
    }

    /// Offers an epoch; `keep` makes what is kept of it, only when it wins.
    pub fn offer(
        &mut self,
        score: f64,
        keep: impl FnOnce() -> anyhow::Result<Best>,
    ) -> anyhow::Result<()> {
        if self.improves(score) {
            self.best = Some(keep()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(epoch: usize, score: f64) -> Best {
        Best {
            score,
            epoch,
            checkpoint: vec![],
            test_embeddings: vec![],
            gallery_embeddings: vec![],
            embedding_dim: 1,
            attention_maps: None,
        }
    }

    #[test]
    fn only_a_strictly_better_epoch_replaces_the_kept_one() {
        let mut keep = KeepBest::default();
        for (epoch, score) in [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6)] {
            keep.offer(score, || Ok(best(epoch, score))).unwrap();
        }
        assert_eq!(keep.best.as_ref().unwrap().epoch, 2);
        // A losing epoch never pays for its snapshot.
        keep.offer(0.1, || panic!("not kept")).unwrap();
    }
}
