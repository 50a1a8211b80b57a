//! Metric losses (applied per group and averaged) and the diversity loss.

pub mod diversity;
pub mod margin;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use diversity::diversity_loss;
pub use margin::{MarginConfig, MarginLoss};

/// Loss names accepted on the `loss` axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossName {
    Margin,
}

impl fmt::Display for LossName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossName::Margin => "margin",
        })
    }
}

/// A metric loss with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum LossConfig {
    Margin(MarginConfig),
}
