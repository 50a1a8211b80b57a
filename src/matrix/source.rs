//! Where an error in a matrix points: a line and column of the file, or a `--set` argument.

use std::path::Path;

use toml::Spanned;

use super::overrides::{Override, WithOverrides};
use crate::error::BadInput;

/// Where an error points: the matrix file, its text and the overrides laid on it.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: WithOverrides<'a>,
}

impl<'a> Source<'a> {
    pub(super) fn new(path: &'a Path, text: &str, overrides: &'a [Override]) -> Self {
        Source {
            path,
            text: WithOverrides::new(text, overrides),
        }
    }

    /// Bad input at byte `offset` of the parsed text: the file's line and column, or the
    /// `--set` argument whose line (past the file's end) holds it.
    pub(super) fn at(&self, offset: usize, message: impl std::fmt::Display) -> BadInput {
        if offset < self.text.file_len || self.text.overrides.is_empty() {
            return BadInput::at(self.path, &self.text.text, offset, message);
        }
        let arg = match self.text.override_at(offset) {
            Some(o) => format!(" {o}"),
            None => String::new(),
        };
        BadInput::new(format!("{}: --set{arg}: {message}", self.path.display()))
    }

    pub(super) fn error_at<T>(
        &self,
        spanned: &Spanned<T>,
        message: impl std::fmt::Display,
    ) -> BadInput {
        self.at(spanned.span().start, message)
    }
}
