//! The artifacts a finished run leaves in its folder (names: [`RunFile`]): metrics, history,
//! the selected checkpoint, embeddings and attention maps.

use serde_json::json;

use super::config::RunConfig;
use super::protocol::Protocol;
use super::record::{EpochRecord, RunOutcome};
use crate::data::{ImageSet, View};
use crate::eval::Metrics;
use crate::eval::npy::{f32_npy, i64_npy};
use crate::store::{EmbeddedSet, RunFile, RunWriter};

/// Writes every artifact of `outcome` (`test` is the test set it was evaluated on: the
/// attention sample's images and classes are stored beside their maps, so figures never need
/// a forward pass).
pub fn write_outcome(
    writer: &mut RunWriter,
    outcome: &RunOutcome,
    test: &ImageSet,
    config: &RunConfig,
) -> anyhow::Result<()> {
    writer.write(RunFile::History, history_csv(outcome).as_bytes())?;
    writer.write(RunFile::CheckpointBest, &outcome.checkpoint)?;
    let dim = outcome.embedding_dim;
    let (embeddings, labels) = (&outcome.test_embeddings, &outcome.test_labels);
    write_embeddings(writer, EmbeddedSet::Test, embeddings, labels, dim)?;
    if let Some((maps, dims)) = &outcome.attention_maps {
        let sample = &outcome.attention_sample;
        let images = test.batch(sample, View::Test)?;
        let [c, h, w] = test.batch_shape(View::Test);
        writer.write(RunFile::AttentionMaps, &f32_npy(maps, dims))?;
        writer.write(
            RunFile::AttentionImages,
            &f32_npy(&images, &[sample.len(), c, h, w]),
        )?;
        let labels: Vec<i64> = sample.iter().map(|&i| test.labels[i] as i64).collect();
        writer.write(RunFile::AttentionLabels, &i64_npy(&labels, &[sample.len()]))?;
    }
    if !outcome.gallery_labels.is_empty() {
        let (gallery, labels) = (&outcome.gallery_embeddings, &outcome.gallery_labels);
        write_embeddings(writer, EmbeddedSet::Gallery, gallery, labels, dim)?;
    }
    writer.write(
        RunFile::Metrics,
        metrics_json(outcome, config.protocol(), &config.train.selection_metric).as_bytes(),
    )
}

/// `[n, dim]` float32 embeddings and their `[n]` int64 labels.
fn write_embeddings(
    writer: &mut RunWriter,
    set: EmbeddedSet,
    embeddings: &[f32],
    labels: &[usize],
    dim: usize,
) -> anyhow::Result<()> {
    let rows = labels.len();
    writer.write(RunFile::Embeddings(set), &f32_npy(embeddings, &[rows, dim]))?;
    let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    writer.write(RunFile::Labels(set), &i64_npy(&labels, &[rows]))
}

/// `metrics.json`: the protocol, the test metrics of the selected epoch (selected on
/// validation, or on the test set under the test-selected protocol), and, labelled apart,
/// the test metrics of the last epoch and the best test value of each metric over the
/// evaluated epochs (what the authors' logger reports).
pub fn metrics_json(outcome: &RunOutcome, protocol: Protocol, selection_metric: &str) -> String {
    let selected = outcome.selected();
    let evaluated = || outcome.history.iter().filter(|r| r.evaluated());
    let mut best_test = Metrics::new();
    for name in every_epoch_keys(outcome) {
        let max = evaluated()
            .map(|r| r.test[&name])
            .fold(f64::NEG_INFINITY, f64::max);
        best_test.insert(name, max);
    }
    let last = evaluated()
        .next_back()
        .expect("the last epoch is evaluated");
    let value = json!({
        "protocol": protocol.to_string(),
        "selected_epoch": outcome.selected_epoch,
        "selection_metric": format!("{} {}", protocol.selection_split(), selection_metric),
        "val": selected.val,
        "test": selected.test,
        "test_last_epoch": {"epoch": last.epoch, "test": last_epoch_retrieval(last, &best_test)},
        "test_max_over_epochs": best_test,
        "interpretability": selected.interpretability,
        "per_group": outcome.per_group,
    });
    serde_json::to_string_pretty(&value).expect("metrics serialise") + "\n"
}

/// The retrieval metrics every evaluated epoch has, of `record` (the clustering metrics are
/// computed for the selected epoch alone).
fn last_epoch_retrieval(record: &EpochRecord, every_epoch: &Metrics) -> Metrics {
    (every_epoch.keys())
        .map(|k| (k.clone(), record.test[k]))
        .collect()
}

/// `history.csv`: one row per epoch; metric columns are `val_<metric>` and `test_<metric>`
/// (the retrieval metrics every evaluated epoch computes; clustering metrics are in
/// `metrics.json`), empty for the epochs trained without evaluation (up to `eval_begin`).
pub fn history_csv(outcome: &RunOutcome) -> String {
    let first = outcome.selected();
    let val_keys: Vec<&String> = first.val.keys().collect();
    let test_keys = every_epoch_keys(outcome);
    let mut header = vec!["epoch", "loss", "metric_loss", "diversity_loss", "seconds"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    header.extend(val_keys.iter().map(|k| format!("val_{k}")));
    header.extend(test_keys.iter().map(|k| format!("test_{k}")));
    let mut out = header.join(",") + "\n";
    for r in &outcome.history {
        let mut row = vec![
            r.epoch.to_string(),
            format!("{:.6}", r.loss),
            format!("{:.6}", r.metric_loss),
            format!("{:.6}", r.diversity_loss),
            format!("{:.3}", r.seconds),
        ];
        let value = |metrics: &Metrics, k: &String| match metrics.get(k) {
            Some(v) => format!("{v:.6}"),
            None => String::new(),
        };
        row.extend(val_keys.iter().map(|k| value(&r.val, k)));
        row.extend(test_keys.iter().map(|k| value(&r.test, k)));
        out += &(row.join(",") + "\n");
    }
    out
}

/// Test metrics every evaluated epoch has (not the clustering metrics of the selected epoch
/// alone).
fn every_epoch_keys(outcome: &RunOutcome) -> Vec<String> {
    let mut evaluated = outcome.history.iter().filter(|r| r.evaluated());
    let first = evaluated.next().expect("at least one evaluated epoch");
    first
        .test
        .keys()
        .filter(|k| evaluated.clone().all(|r| r.test.contains_key(*k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, val: f64, test: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            loss: 1.0,
            metric_loss: 0.9,
            diversity_loss: 5.0,
            val: Metrics::from([("recall@1".to_string(), val)]),
            test: Metrics::from([("recall@1".to_string(), test)]),
            interpretability: Metrics::from([("group_cosine".to_string(), 0.1 * epoch as f64)]),
            seconds: 2.0,
        }
    }

    /// An outcome of `history` with nothing stored but its metrics.
    fn outcome(
        selected_epoch: usize,
        history: Vec<EpochRecord>,
        per_group: Vec<Metrics>,
    ) -> RunOutcome {
        RunOutcome {
            selected_epoch,
            history,
            checkpoint: vec![],
            test_embeddings: vec![],
            embedding_dim: 1,
            test_labels: vec![],
            gallery_embeddings: vec![],
            gallery_labels: vec![],
            attention_sample: vec![],
            attention_maps: None,
            per_group,
        }
    }

    #[test]
    fn metrics_report_the_selected_epoch_and_the_test_maximum_apart() {
        let per_group = vec![Metrics::from([("recall@1".to_string(), 0.25)])];
        let outcome = outcome(1, vec![record(1, 0.8, 0.5), record(2, 0.7, 0.6)], per_group);
        let value: serde_json::Value =
            serde_json::from_str(&metrics_json(&outcome, Protocol::HeldOut, "recall@1")).unwrap();
        assert_eq!(value["protocol"], "held-out");
        assert_eq!(value["selection_metric"], "val recall@1");
        assert_eq!(value["selected_epoch"], 1);
        assert_eq!(value["test_last_epoch"]["epoch"], 2);
        assert_eq!(value["test_last_epoch"]["test"]["recall@1"], 0.6);
        assert_eq!(value["test"]["recall@1"], 0.5);
        assert_eq!(value["test_max_over_epochs"]["recall@1"], 0.6);
        // Interpretability of the selected epoch, apart from the accuracy metrics.
        assert_eq!(value["interpretability"]["group_cosine"], 0.1);
        assert_eq!(value["per_group"][0]["recall@1"], 0.25);
        let csv = history_csv(&outcome);
        assert_eq!(
            csv.lines().next().unwrap(),
            "epoch,loss,metric_loss,diversity_loss,seconds,val_recall@1,test_recall@1"
        );
        assert_eq!(csv.lines().count(), 3);
    }

    #[test]
    fn test_selected_runs_label_their_selection_and_leave_unevaluated_epochs_empty() {
        let mut early = record(1, 0.0, 0.0);
        (early.val, early.test) = (Metrics::new(), Metrics::new());
        let mut history = vec![early, record(2, 0.0, 0.7), record(3, 0.0, 0.6)];
        for r in &mut history {
            r.val = Metrics::new();
        }
        let outcome = outcome(2, history, vec![]);
        let value: serde_json::Value =
            serde_json::from_str(&metrics_json(&outcome, Protocol::TestSelected, "recall@1"))
                .unwrap();
        assert_eq!(value["protocol"], "test-selected");
        assert_eq!(value["selection_metric"], "test recall@1");
        assert_eq!(value["test"]["recall@1"], 0.7);
        assert_eq!(value["test_max_over_epochs"]["recall@1"], 0.7);
        assert_eq!(value["test_last_epoch"]["test"]["recall@1"], 0.6);
        let csv = history_csv(&outcome);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,loss,metric_loss,diversity_loss,seconds,test_recall@1"
        );
        assert!(lines[1].ends_with(",2.000,"), "{}", lines[1]);
    }
}
