//! Selections of cells by axis values: `--only` on the command line and `[[exclude]]` rules in
//! a matrix match cells the same way.

use super::axis::{Axis, AxisValues};
use crate::error::BadInput;
use crate::store::find::{MIN_PREFIX, hash_prefix};

/// Axis -> allowed values; a cell matches when every listed axis has one of its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection(Vec<(Axis, Vec<String>)>);

impl Selection {
    /// Adds `value` to the values allowed on `axis`.
    pub fn allow(&mut self, axis: Axis, value: String) {
        match self.0.iter_mut().find(|(a, _)| *a == axis) {
            Some((_, values)) => values.push(value),
            None => self.0.push((axis, vec![value])),
        }
    }

    /// True when every axis of the selection allows the cell's value.
    pub fn matches(&self, values: &AxisValues) -> bool {
        self.0
            .iter()
            .all(|(axis, allowed)| values.get(*axis).is_some_and(|v| allowed.contains(&v)))
    }
}

/// `--only` selections: a cell is selected when any one selection matches it. Within a
/// selection (`head=attentive,groups=4`) every key must match; a key given twice
/// (`groups=2,groups=4`) matches either value. Besides the axes, `hash=01337e` selects the
/// cell whose hash starts with those digits (what `plan`, `status` and `show` print).
#[derive(Debug, Clone, Default)]
pub struct CellFilter {
    selections: Vec<(Selection, Vec<String>)>,
}

impl CellFilter {
    /// Parses `--only` arguments; an unknown key is bad input listing the axes.
    pub fn parse(args: &[String]) -> Result<CellFilter, BadInput> {
        let names: Vec<&str> = Axis::ALL.iter().map(|a| a.name()).collect();
        let mut selections = Vec::new();
        for arg in args {
            let (mut selection, mut hashes) = (Selection::default(), Vec::new());
            for pair in arg.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    BadInput::new(format!("--only {arg}: `{pair}` is not KEY=VALUE"))
                })?;
                let (key, value) = (key.trim(), value.trim());
                if key == "hash" {
                    hashes.push(hash_prefix(value).ok_or_else(|| {
                        BadInput::new(format!(
                            "--only {arg}: hash={value}: a cell is named by {MIN_PREFIX} to 64 hex digits of its hash"
                        ))
                    })?);
                    continue;
                }
                let axis = Axis::named(key).ok_or_else(|| {
                    BadInput::new(format!(
                        "--only {arg}: `{key}` is not an axis (axes: {}; or hash)",
                        names.join(", ")
                    ))
                })?;
                selection.allow(axis, value.to_string());
            }
            selections.push((selection, hashes));
        }
        Ok(CellFilter { selections })
    }

    /// True when no selection was given or one of them matches the cell with `values` and
    /// `hash`.
    pub fn matches(&self, values: &AxisValues, hash: &str) -> bool {
        self.selections.is_empty()
            || (self.selections.iter()).any(|(selection, hashes)| {
                selection.matches(values)
                    && (hashes.is_empty() || hashes.iter().any(|h| hash.starts_with(h.as_str())))
            })
    }
}
