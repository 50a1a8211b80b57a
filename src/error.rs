//! The error that maps to exit code 2: bad input (usage, configuration, data layout).

use std::fmt;
use std::path::Path;

/// Bad input from the user: a malformed matrix, an unknown name, a missing dataset.
///
/// The CLI exits with code 2 when an error chain contains one; every other error is a failed
/// run (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadInput {
    /// One line that names the file (and line/column where it applies) and what is wrong.
    pub message: String,
}

impl BadInput {
    /// A bad-input error with a plain message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// A bad-input error located in a text file at a byte offset (line and column are 1-based).
    pub fn at(path: &Path, source: &str, offset: usize, message: impl fmt::Display) -> Self {
        let (line, column) = line_column(source, offset);
        Self::new(format!("{}:{line}:{column}: {message}", path.display()))
    }
}

/// Settings that break a rule: the keys involved (an error points at the first one a matrix
/// table set) and why. Configuration types say what is wrong; the matrix says where.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub keys: &'static [&'static str],
    pub message: String,
}

impl Invalid {
    pub fn new(keys: &'static [&'static str], message: impl Into<String>) -> Self {
        Self {
            keys,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset in `source`.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..offset].chars().count() + 1;
    (line, column)
}

/// True when any error in the chain is a [`BadInput`].
pub fn is_bad_input(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<BadInput>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = [2,\n  3]\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 4));
        assert_eq!(line_column(text, 17), (3, 3));
    }

    #[test]
    fn bad_input_is_found_in_a_context_chain() {
        let error = anyhow::Error::new(BadInput::new("x")).context("while planning");
        assert!(is_bad_input(&error));
        assert!(!is_bad_input(&anyhow::anyhow!("plain failure")));
    }
}
