//! The tidy index of a matrix's finished runs: one row per run x metric, written as Parquet
//! beside the tables (pandas: `pd.read_parquet`, polars: `pl.read_parquet`). Every table is
//! aggregated from this frame.

use std::path::Path;

use anyhow::Context;
use polars::prelude::*;

use super::runs::RunRow;
use crate::matrix::Axis;
use crate::store::write_atomic;

/// Which part of `metrics.json` a value comes from.
pub const SPLITS: [&str; 3] = ["test", "val", "interpretability"];

/// Columns: protocol, dataset, backbone, loss, embedding_size, head, groups, seed, fold (null without
/// k-fold validation), hash, selected_epoch, split, metric, value.
pub fn index_frame(rows: &[RunRow]) -> PolarsResult<DataFrame> {
    let long: Vec<(&RunRow, &str, &String, f64)> = rows
        .iter()
        .flat_map(|row| {
            SPLITS
                .iter()
                .zip([&row.test, &row.val, &row.interpretability])
                .flat_map(move |(split, metrics)| {
                    metrics.iter().map(move |(m, x)| (row, *split, m, *x))
                })
        })
        .collect();
    let text = |f: &dyn Fn(&RunRow) -> String| -> Vec<String> {
        long.iter().map(|(r, ..)| f(r)).collect()
    };
    let int =
        |f: &dyn Fn(&RunRow) -> u64| -> Vec<u64> { long.iter().map(|(r, ..)| f(r)).collect() };
    let columns = vec![
        Column::new(
            Axis::Protocol.name().into(),
            text(&|r| r.values.protocol.to_string()),
        ),
        Column::new(
            Axis::Dataset.name().into(),
            text(&|r| r.values.dataset.to_string()),
        ),
        Column::new(
            Axis::Backbone.name().into(),
            text(&|r| r.values.backbone.to_string()),
        ),
        Column::new(
            Axis::Loss.name().into(),
            text(&|r| r.values.loss.to_string()),
        ),
        Column::new(
            Axis::EmbeddingSize.name().into(),
            int(&|r| r.values.embedding_size as u64),
        ),
        Column::new(
            Axis::Head.name().into(),
            text(&|r| r.values.head.to_string()),
        ),
        Column::new(Axis::Groups.name().into(), int(&|r| r.values.groups as u64)),
        Column::new(Axis::Seed.name().into(), int(&|r| r.values.seed)),
        Column::new(
            Axis::Fold.name().into(),
            long.iter()
                .map(|(r, ..)| r.values.fold.map(|f| f as u64))
                .collect::<Vec<Option<u64>>>(),
        ),
        Column::new("hash".into(), text(&|r| r.hash.clone())),
        Column::new("selected_epoch".into(), int(&|r| r.selected_epoch)),
        Column::new(
            "split".into(),
            long.iter().map(|(_, s, ..)| *s).collect::<Vec<&str>>(),
        ),
        Column::new(
            "metric".into(),
            long.iter()
                .map(|(_, _, m, _)| m.as_str())
                .collect::<Vec<&str>>(),
        ),
        Column::new(
            "value".into(),
            long.iter().map(|(.., x)| *x).collect::<Vec<f64>>(),
        ),
    ];
    DataFrame::new(long.len(), columns)
}

/// Writes the index as Parquet (atomically: a reader never sees half a file).
pub fn write_index(frame: &DataFrame, path: &Path) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    ParquetWriter::new(&mut buffer)
        .finish(&mut frame.clone())
        .map_err(|e| anyhow::anyhow!("encoding {}: {e}", path.display()))?;
    write_atomic(path, &buffer)
}

/// Reads an index written by [`write_index`].
pub fn read_index(path: &Path) -> anyhow::Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::AxisValues;

    #[test]
    fn the_index_has_a_row_per_run_and_metric_and_reads_back_from_parquet() {
        let values = AxisValues {
            protocol: crate::train::Protocol::HeldOut,
            dataset: crate::data::DatasetName::Synthetic,
            backbone: crate::model::BackboneKind::ConvnetSmall,
            head: crate::model::HeadKind::Attentive,
            loss: crate::loss::LossName::Margin,
            embedding_size: 8,
            groups: 2,
            seed: 3,
            fold: Some(1),
        };
        let row = RunRow {
            hash: "ab".repeat(32),
            dir: Default::default(),
            values,
            test: vec![("map@r".into(), 0.25), ("recall@1".into(), 0.5)],
            val: vec![("map@r".into(), 0.75)],
            interpretability: vec![("group_cosine".into(), 0.125)],
            selected_epoch: 4,
        };
        let frame = index_frame(&[row]).unwrap();
        assert_eq!(frame.height(), 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.parquet");
        write_index(&frame, &path).unwrap();
        let back = read_index(&path).unwrap();
        assert!(back.equals_missing(&frame), "{back}");
        let value = |split: &str, metric: &str| {
            let text = |name: &str| back.column(name).unwrap().str().unwrap().clone();
            let mask = text("split").equal(split) & text("metric").equal(metric);
            back.filter(&mask)
                .unwrap()
                .column("value")
                .unwrap()
                .f64()
                .unwrap()
                .get(0)
        };
        assert_eq!(value("test", "recall@1"), Some(0.5));
        assert_eq!(value("val", "map@r"), Some(0.75));
        assert_eq!(value("interpretability", "group_cosine"), Some(0.125));
        assert_eq!(back.column("fold").unwrap().u64().unwrap().get(0), Some(1));
    }
}
