//! The experiment matrix: parse, validate, expand and hash (`experiments/*.toml`).

pub mod axis;
mod expand;
pub mod filter;
pub mod hash;
pub(crate) mod layer;
pub mod overrides;
pub(crate) mod schema;
mod source;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::BadInput;
use crate::train::RunConfig;
pub use axis::{Axis, AxisValues};
pub use filter::{CellFilter, Selection};
pub use overrides::Override;

/// A loaded matrix: its cells, in expansion order.
#[derive(Debug)]
pub struct Matrix {
    /// Name used for report files (the `name` key or the file stem).
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub cells: Vec<PlannedCell>,
    /// Combinations removed by `[[exclude]]` rules.
    pub excluded: usize,
    /// Combinations that do not exist (a head without groups with a group count above 1).
    pub not_applicable: usize,
}

/// One cell: its effective configuration, hash and the axis values it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCell {
    pub hash: String,
    pub config: RunConfig,
    pub values: AxisValues,
    /// Where the dataset lives (provenance, not part of the hash).
    pub data_root: PathBuf,
    /// A csv dataset's table (not part of the hash either: its content is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_table: Option<PathBuf>,
    /// The pretrained backbone's state dict, if any (its file name is in the hash).
    pub weights: Option<PathBuf>,
}

impl Matrix {
    /// Reads, validates and expands a matrix file. Bad input is a [`BadInput`] naming the file,
    /// line and column.
    pub fn load(path: &Path) -> anyhow::Result<Matrix> {
        Self::load_with(path, &[])
    }

    /// [`Self::load`] with `--set` overrides laid on the file before it is validated.
    pub fn load_with(path: &Path, overrides: &[Override]) -> anyhow::Result<Matrix> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BadInput::new(format!("{}: cannot read the matrix: {e}", path.display()))
        })?;
        Self::parse_with(path, &text, overrides)
    }

    /// Validates and expands matrix text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Matrix> {
        Self::parse_with(path, text, &[])
    }

    /// [`Self::parse`] with `--set` overrides.
    pub fn parse_with(path: &Path, text: &str, overrides: &[Override]) -> anyhow::Result<Matrix> {
        let src = source::Source::new(path, text, overrides);
        let error = |e: toml::de::Error| {
            let message = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => src.at(span.start, message),
                None => BadInput::new(format!("{}: {message}", path.display())),
            }
        };
        let table = toml::de::DeTable::parse(&src.text.text).map_err(error)?;
        let table = (src.text.apply(table)).map_err(|(offset, message)| src.at(offset, message))?;
        let file =
            schema::MatrixFile::deserialize(toml::de::Deserializer::from(table)).map_err(error)?;
        let expansion = expand::expand(&file, &src)?;
        let name = match &file.name {
            Some(name) => {
                let valid = !name.get_ref().is_empty()
                    && name
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    && !name.get_ref().starts_with('.');
                if !valid {
                    return Err(src
                        .at(
                            name.span().start,
                            "name must be letters, digits, '-', '_' or '.' (it names report files)",
                        )
                        .into());
                }
                name.get_ref().clone()
            }
            None => path
                .file_stem()
                .and_then(|s| s.to_str())
                .context("matrix path has no file name")?
                .to_string(),
        };
        Ok(Matrix {
            name,
            path: path.to_path_buf(),
            description: file.description,
            cells: expansion.cells,
            excluded: expansion.excluded,
            not_applicable: expansion.not_applicable,
        })
    }

    /// The cells that `filter` selects.
    pub fn select(&self, filter: &CellFilter) -> Vec<&PlannedCell> {
        self.cells
            .iter()
            .filter(|c| filter.matches(&c.values, &c.hash))
            .collect()
    }
}

#[cfg(test)]
mod tests;
