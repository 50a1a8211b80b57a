//! Where an error in a matrix points: the file and its text, for line and column.

use std::path::Path;

use toml::Spanned;

use crate::error::BadInput;

/// Where an error points: the matrix file and its text.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub(super) fn error_at<T>(
        &self,
        spanned: &Spanned<T>,
        message: impl std::fmt::Display,
    ) -> BadInput {
        BadInput::at(self.path, self.text, spanned.span().start, message)
    }
}
