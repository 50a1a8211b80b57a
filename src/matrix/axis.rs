//! The axes of a matrix: one enum names them for the expansion, `--only`, exclude rules, the
//! runs index and the tables.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::loss::LossName;
use crate::model::{BackboneKind, HeadKind};
use crate::train::Protocol;

/// One axis of a matrix (`fold` comes from a dataset's `folds = k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    Protocol,
    Dataset,
    Backbone,
    Head,
    Loss,
    EmbeddingSize,
    Groups,
    Seed,
    Fold,
}

impl Axis {
    /// Every axis, in expansion order: the keys `--only` accepts.
    pub const ALL: [Axis; 9] = [
        Axis::Protocol,
        Axis::Dataset,
        Axis::Backbone,
        Axis::Head,
        Axis::Loss,
        Axis::EmbeddingSize,
        Axis::Groups,
        Axis::Seed,
        Axis::Fold,
    ];

    /// The axes a table row or column compares, in the runs index's column order; `seed` and
    /// `fold` are replicates. `protocol` first: a table never mixes protocols in a section.
    pub const KEYS: [Axis; 7] = [
        Axis::Protocol,
        Axis::Dataset,
        Axis::Backbone,
        Axis::Loss,
        Axis::EmbeddingSize,
        Axis::Head,
        Axis::Groups,
    ];

    /// The name a matrix, `--only` and the runs index use.
    pub const fn name(self) -> &'static str {
        match self {
            Axis::Protocol => "protocol",
            Axis::Dataset => "dataset",
            Axis::Backbone => "backbone",
            Axis::Head => "head",
            Axis::Loss => "loss",
            Axis::EmbeddingSize => "embedding_size",
            Axis::Groups => "groups",
            Axis::Seed => "seed",
            Axis::Fold => "fold",
        }
    }

    /// The axis named `name`.
    pub fn named(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Names of [`Axis::KEYS`].
    pub const fn key_names() -> [&'static str; 7] {
        let mut names = [""; 7];
        let mut i = 0;
        while i < names.len() {
            names[i] = Axis::KEYS[i].name();
            i += 1;
        }
        names
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of each axis for one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AxisValues {
    /// Held-out (the default, left out when written) or test-selected.
    #[serde(default, skip_serializing_if = "Protocol::is_held_out")]
    pub protocol: Protocol,
    pub dataset: DatasetName,
    pub backbone: BackboneKind,
    pub head: HeadKind,
    pub loss: LossName,
    pub embedding_size: usize,
    pub groups: usize,
    pub seed: u64,
    /// The validation fold, with k-fold class-disjoint validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<usize>,
}

impl AxisValues {
    /// The value of `axis` as written in a matrix (`head` -> `attentive`); `None` for a fold
    /// without k-fold validation.
    pub fn get(&self, axis: Axis) -> Option<String> {
        Some(match axis {
            Axis::Protocol => self.protocol.to_string(),
            Axis::Dataset => self.dataset.to_string(),
            Axis::Backbone => self.backbone.to_string(),
            Axis::Head => self.head.to_string(),
            Axis::Loss => self.loss.to_string(),
            Axis::EmbeddingSize => self.embedding_size.to_string(),
            Axis::Groups => self.groups.to_string(),
            Axis::Seed => self.seed.to_string(),
            Axis::Fold => self.fold?.to_string(),
        })
    }
}

impl fmt::Display for AxisValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} D={} P={} seed={}",
            self.dataset,
            self.backbone,
            self.head,
            self.loss,
            self.embedding_size,
            self.groups,
            self.seed
        )?;
        if let Some(fold) = self.fold {
            write!(f, " fold={fold}")?;
        }
        match self.protocol {
            Protocol::HeldOut => Ok(()),
            protocol => write!(f, " {protocol}"),
        }
    }
}
