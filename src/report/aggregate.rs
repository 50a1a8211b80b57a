//! Means and spreads over replicates (seeds and folds), computed with polars from the runs
//! index, plus how many replicates each key combination has planned.

use std::collections::HashMap;

use polars::prelude::*;

use super::runs::{KEY_COLUMNS, Runs};
use crate::matrix::Axis;

/// Mean and sample standard deviation of one metric over the finished replicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// NaN for a single replicate.
    pub std: f64,
    pub seeds: u32,
}

/// Values of [`KEY_COLUMNS`], in that order.
pub type Keys = Vec<String>;

/// The index aggregated over replicates.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    stats: HashMap<(Keys, String, String), Stat>,
    /// Replicates planned per key combination (finished or not).
    planned: HashMap<Keys, u32>,
    /// Per key column, its values in the order the matrix lists them.
    order: Vec<Vec<String>>,
    /// Per split, metric names in first-seen order.
    metrics: HashMap<String, Vec<String>>,
}

fn keys_of(values: &crate::matrix::AxisValues) -> Keys {
    KEY_COLUMNS
        .iter()
        .map(|k| values.get(*k).unwrap_or_default())
        .collect()
}

impl Aggregate {
    /// Groups `index` (see [`super::index::index_frame`]) by every key, split and metric.
    pub fn new(index: &DataFrame, runs: &Runs) -> PolarsResult<Aggregate> {
        let mut aggregate = Aggregate {
            order: vec![Vec::new(); KEY_COLUMNS.len()],
            ..Aggregate::default()
        };
        for values in runs.planned() {
            let keys = keys_of(values);
            for (order, value) in aggregate.order.iter_mut().zip(&keys) {
                if !order.contains(value) {
                    order.push(value.clone());
                }
            }
            *aggregate.planned.entry(keys).or_default() += 1;
        }
        // Numbers in numeric order (P = 1, 2, 4, 8 whatever the heads listed first).
        for order in &mut aggregate.order {
            if order.iter().all(|v| v.parse::<u64>().is_ok()) {
                order.sort_by_key(|v| v.parse::<u64>().unwrap_or(0));
            }
        }
        if index.height() == 0 {
            return Ok(aggregate);
        }
        let mut keyed = index.clone();
        for key in KEY_COLUMNS {
            let text = keyed.column(key.name())?.cast(&DataType::String)?;
            keyed.with_column(text)?;
        }
        let by = (KEY_COLUMNS.iter().map(|k| k.name())).chain(["split", "metric"]);
        let groups = keyed.group_by_stable(by)?.select(["value"]);
        // polars marks its eager aggregates deprecated in favour of lazy frames, yet they run
        // the same kernels (`agg_mean`, `agg_std`); the `lazy` feature would bring polars'
        // streaming engine and an HTTP stack, a fifth of a cold build. The three frames list
        // the groups in the same (first-seen) order.
        #[allow(deprecated)]
        let (mut frame, std, seeds) = (groups.mean()?, groups.std(1)?, groups.count()?);
        frame.rename("value_mean", "mean".into())?;
        frame.with_column(std.column("value_agg_std")?.clone().with_name("std".into()))?;
        frame.with_column(
            seeds
                .column("value_count")?
                .clone()
                .with_name("seeds".into()),
        )?;
        let text = |name: &str| -> PolarsResult<Vec<String>> {
            Ok(frame
                .column(name)?
                .str()?
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect())
        };
        let key_columns: Vec<Vec<String>> = KEY_COLUMNS
            .iter()
            .map(|k| text(k.name()))
            .collect::<PolarsResult<_>>()?;
        let (split, metric) = (text("split")?, text("metric")?);
        let seeds = frame.column("seeds")?.cast(&DataType::UInt32)?;
        let (mean, std) = (frame.column("mean")?.f64()?, frame.column("std")?.f64()?);
        for i in 0..frame.height() {
            let keys: Keys = key_columns.iter().map(|c| c[i].clone()).collect();
            let names = aggregate.metrics.entry(split[i].clone()).or_default();
            if !names.contains(&metric[i]) {
                names.push(metric[i].clone());
            }
            aggregate.stats.insert(
                (keys, split[i].clone(), metric[i].clone()),
                Stat {
                    mean: mean.get(i).unwrap_or(f64::NAN),
                    std: std.get(i).unwrap_or(f64::NAN),
                    seeds: seeds.u32()?.get(i).unwrap_or(0),
                },
            );
        }
        Ok(aggregate)
    }

    pub fn stat(&self, keys: &Keys, split: &str, metric: &str) -> Option<Stat> {
        self.stats
            .get(&(keys.clone(), split.to_string(), metric.to_string()))
            .copied()
    }

    /// Replicates planned for `keys` (0: the matrix has no such cell).
    pub fn planned(&self, keys: &Keys) -> u32 {
        self.planned.get(keys).copied().unwrap_or(0)
    }

    /// Every planned key combination, in matrix order.
    pub fn planned_keys(&self) -> Vec<Keys> {
        let mut keys: Vec<Keys> = self.planned.keys().cloned().collect();
        keys.sort_by_key(|k| self.rank(k));
        keys
    }

    /// Position of each key value in matrix order (for sorting rows and columns).
    pub fn rank(&self, keys: &Keys) -> Vec<usize> {
        keys.iter()
            .zip(&self.order)
            .map(|(v, order)| order.iter().position(|o| o == v).unwrap_or(usize::MAX))
            .collect()
    }

    /// The values of key column `key` that some planned cell has, in matrix order.
    pub fn values(&self, key: Axis) -> Vec<String> {
        KEY_COLUMNS
            .iter()
            .position(|k| *k == key)
            .map(|i| self.order[i].clone())
            .unwrap_or_default()
    }

    /// Metric names of `split` that some finished run has.
    pub fn metrics(&self, split: &str) -> Vec<String> {
        self.metrics.get(split).cloned().unwrap_or_default()
    }
}
