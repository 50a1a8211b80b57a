//! The files of a run folder, `results/runs/<hash>/`: the one owner of their names. Training
//! writes them through [`super::RunWriter`], the store checks them, the report reads them.

use std::fmt;

/// Which set a run's embeddings belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedSet {
    /// The test set (the queries, for query-vs-gallery datasets).
    Test,
    /// The gallery of a query-vs-gallery dataset (In-Shop).
    Gallery,
}

/// One file of a run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFile {
    /// The effective configuration (what the hash covers), TOML.
    Cell,
    /// The selected epoch's metrics (`{ selected_epoch, val, test, ... }`).
    Metrics,
    /// One row per epoch.
    History,
    /// The embedder at the selected epoch (burnpack).
    CheckpointBest,
    /// `[n, d]` float32 embeddings at the selected epoch.
    Embeddings(EmbeddedSet),
    /// `[n]` int64 labels of those embeddings.
    Labels(EmbeddedSet),
    /// `[k, P, h, w]` attention maps of the fixed test images.
    AttentionMaps,
    /// `[k, c, h, w]` those images (test view).
    AttentionImages,
    /// `[k]` their classes.
    AttentionLabels,
    /// Checksums and provenance; written last, it makes the run done.
    Manifest,
    /// Why the run failed.
    Failure,
}

/// The folder of a run's resume state while it trains (removed when it finishes).
pub const STATE_DIR: &str = "state";
/// The file of the resume state that names its last complete epoch.
pub const STATE_CURRENT: &str = "current.json";

impl RunFile {
    /// The file name inside the run folder.
    pub fn name(self) -> &'static str {
        use EmbeddedSet::{Gallery, Test};
        match self {
            RunFile::Cell => "cell.toml",
            RunFile::Metrics => "metrics.json",
            RunFile::History => "history.csv",
            RunFile::CheckpointBest => "checkpoint-best.bpk",
            RunFile::Embeddings(Test) => "test-embeddings.npy",
            RunFile::Embeddings(Gallery) => "gallery-embeddings.npy",
            RunFile::Labels(Test) => "test-labels.npy",
            RunFile::Labels(Gallery) => "gallery-labels.npy",
            RunFile::AttentionMaps => "attention-maps.npy",
            RunFile::AttentionImages => "attention-images.npy",
            RunFile::AttentionLabels => "attention-labels.npy",
            RunFile::Manifest => "manifest.json",
            RunFile::Failure => "failure.json",
        }
    }
}

impl fmt::Display for RunFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
