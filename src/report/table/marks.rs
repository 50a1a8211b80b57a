//! Marks: the best value of each column and the difference of each row to the baseline,
//! with † where the difference is within noise.

use super::{Baseline, Row, Stat};
use crate::matrix::Axis;

pub(super) const NOISE: &str = "†: within noise (the difference is below two standard errors of the \
                     difference, sample std over seeds, or a side has a single seed)";

/// A difference is within noise when it is below two standard errors of the difference
/// (normal approximation, sample std over seeds), or when either side has a single seed.
pub(super) fn within_noise(a: Stat, b: Stat) -> bool {
    if a.seeds < 2 || b.seeds < 2 || a.std.is_nan() || b.std.is_nan() {
        return true;
    }
    let se = (a.std * a.std / f64::from(a.seeds) + b.std * b.std / f64::from(b.seeds)).sqrt();
    (a.mean - b.mean).abs() < 2.0 * se
}

/// Best of each column and differences to the baseline row, within one section.
pub(super) fn mark(rows: &mut [Row], row_keys: &[Axis], baseline: Baseline) {
    let position = |key: Axis| row_keys.iter().position(|k| *k == key);
    let (head, groups) = (position(Axis::Head), position(Axis::Groups));
    let groups_of = |row: &Row| groups.and_then(|g| row.keys[g].parse::<usize>().ok());
    let base: Vec<Option<usize>> = rows
        .iter()
        .map(|row| match baseline {
            Baseline::NoGrouping => rows.iter().position(|r| {
                head.is_some_and(|h| r.keys[h] == "none") && groups_of(r).is_none_or(|g| g == 1)
            }),
            Baseline::FewestGroups => {
                let same_head = |r: &Row| head.is_none_or(|h| r.keys[h] == row.keys[h]);
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| same_head(r))
                    .min_by_key(|(_, r)| groups_of(r))
                    .map(|(i, _)| i)
            }
        })
        .collect();
    let columns = rows.first().map_or(0, |r| r.cells.len());
    for c in 0..columns {
        let means: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.cells[c].stat.map(|s| s.mean))
            .collect();
        let top = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let snapshot: Vec<Option<Stat>> = rows.iter().map(|r| r.cells[c].stat).collect();
        for (i, row) in rows.iter_mut().enumerate() {
            let cell = &mut row.cells[c];
            let Some(stat) = cell.stat else { continue };
            cell.best = means.len() > 1 && stat.mean == top;
            cell.delta = match base[i] {
                Some(b) if b != i => {
                    snapshot[b].map(|b| (stat.mean - b.mean, within_noise(stat, b)))
                }
                _ => None,
            };
        }
    }
}
