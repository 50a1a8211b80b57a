//! The experiment matrix: parse, validate, expand and hash (`experiments/*.toml`).

mod expand;
pub mod hash;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::error::BadInput;
use crate::loss::LossName;
use crate::model::{BackboneKind, HeadKind};
use crate::train::RunConfig;
pub use schema::AXIS_NAMES;

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
    /// The pretrained backbone's state dict, if any (its file name is in the hash).
    pub weights: Option<PathBuf>,
}

/// The value of each axis for one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AxisValues {
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
    /// The value of axis `key` as written in a matrix (`head` -> `attentive`).
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "dataset" => self.dataset.to_string(),
            "backbone" => self.backbone.to_string(),
            "head" => self.head.to_string(),
            "loss" => self.loss.to_string(),
            "embedding_size" => self.embedding_size.to_string(),
            "groups" => self.groups.to_string(),
            "seed" => self.seed.to_string(),
            "fold" => self.fold?.to_string(),
            _ => return None,
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
        match self.fold {
            Some(fold) => write!(f, " fold={fold}"),
            None => Ok(()),
        }
    }
}

impl Matrix {
    /// Reads, validates and expands a matrix file. Bad input is a [`BadInput`] naming the file,
    /// line and column.
    pub fn load(path: &Path) -> anyhow::Result<Matrix> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BadInput::new(format!("{}: cannot read the matrix: {e}", path.display()))
        })?;
        Self::parse(path, &text)
    }

    /// Validates and expands matrix text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Matrix> {
        let file: schema::MatrixFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => BadInput::at(path, text, span.start, message),
                None => BadInput::new(format!("{}: {message}", path.display())),
            }
        })?;
        let src = expand::Source { path, text };
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
                    return Err(BadInput::at(
                        path,
                        text,
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
            .filter(|c| filter.matches(&c.values))
            .collect()
    }
}

/// `--only` selections: a cell is selected when any one selection matches it. Within a
/// selection (`head=attentive,groups=4`) every key must match; a key given twice
/// (`groups=2,groups=4`) matches either value.
#[derive(Debug, Clone, Default)]
pub struct CellFilter {
    selections: Vec<Vec<(String, Vec<String>)>>,
}

impl CellFilter {
    /// Parses `--only` arguments; an unknown key is bad input listing the axes.
    pub fn parse(args: &[String]) -> Result<CellFilter, BadInput> {
        let mut selections = Vec::new();
        for arg in args {
            let mut selection: Vec<(String, Vec<String>)> = Vec::new();
            for pair in arg.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    BadInput::new(format!("--only {arg}: `{pair}` is not KEY=VALUE"))
                })?;
                let (key, value) = (key.trim(), value.trim());
                if !AXIS_NAMES.contains(&key) {
                    return Err(BadInput::new(format!(
                        "--only {arg}: `{key}` is not an axis (axes: {})",
                        AXIS_NAMES.join(", ")
                    )));
                }
                match selection.iter_mut().find(|(k, _)| k == key) {
                    Some((_, values)) => values.push(value.to_string()),
                    None => selection.push((key.to_string(), vec![value.to_string()])),
                }
            }
            selections.push(selection);
        }
        Ok(CellFilter { selections })
    }

    /// True when no selection was given or one of them matches.
    pub fn matches(&self, values: &AxisValues) -> bool {
        self.selections.is_empty()
            || self.selections.iter().any(|selection| {
                selection
                    .iter()
                    .all(|(key, allowed)| values.get(key).is_some_and(|v| allowed.contains(&v)))
            })
    }
}

#[cfg(test)]
mod tests;
