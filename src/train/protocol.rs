//! The evaluation protocol: which data selects the epoch a run reports.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::Validation;

/// How a run's reported epoch is chosen; the matrix's `protocol` axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// A validation split of the training data (the dataset table's `validation`) selects the
    /// epoch; the test set is reported at that epoch ("A Metric Learning Reality Check").
    #[default]
    HeldOut,
    /// Every training image trains and the epoch with the best test `selection_metric` is
    /// reported: selection on the test set, as the authors' code reports.
    TestSelected,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::HeldOut, Protocol::TestSelected];

    /// The protocol a dataset configuration trains under.
    pub fn of(validation: Validation) -> Protocol {
        match validation {
            Validation::None => Protocol::TestSelected,
            Validation::Images | Validation::Classes => Protocol::HeldOut,
        }
    }

    /// True for the default (left out of axis values, so older runs indexes read the same).
    pub fn is_held_out(&self) -> bool {
        *self == Protocol::HeldOut
    }

    /// The part of an epoch's record whose `selection_metric` selects: `val` or `test`.
    pub fn selection_split(self) -> &'static str {
        match self {
            Protocol::HeldOut => "val",
            Protocol::TestSelected => "test",
        }
    }

    /// One line for captions: what the protocol's numbers are.
    pub fn explained(self) -> &'static str {
        match self {
            Protocol::HeldOut => {
                "held-out: the epoch selected on a validation split of the training data, its test metrics"
            }
            Protocol::TestSelected => {
                "test-selected: all training classes train; the epoch with the best test selection metric (after eval_begin) is reported, selection on the test set as in the authors' code"
            }
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::HeldOut => "held-out",
            Protocol::TestSelected => "test-selected",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_matrix_spellings() {
        for protocol in Protocol::ALL {
            let text = format!("\"{protocol}\"");
            let parsed: Protocol = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, protocol);
        }
        assert_eq!(Protocol::of(Validation::None), Protocol::TestSelected);
        assert_eq!(Protocol::of(Validation::Classes), Protocol::HeldOut);
    }
}
