//! Training state, so that a run killed at any point resumes from its last saved state and, on
//! the flex backend, finishes with the same numbers as an uninterrupted run.
//!
//! After epoch e the state goes to `<dir>/epoch-<e>/` (model, optimisers, loss parameters,
//! the selected checkpoint so far, history), and within epoch e + 1, after step s (with
//! `--checkpoint-every`, or when a signal stops the run), to `<dir>/epoch-<e>-step-<s>/` with
//! the epoch's loss sums so far and the position of its mining generator; `<dir>/current.json`,
//! written atomically last, names the complete one, and older ones are then removed. The
//! batches and their augmentation are seeded per epoch and step, so nothing more is needed to
//! replay.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::best::{Best, KeepBest};
use super::record::EpochRecord;
use crate::eval::npy::{NpyArray, NpyValues, f32_npy, read_npy};
use crate::loss::MetricLoss;
use crate::model::Embedder;
use crate::store::{STATE_CURRENT, write_atomic};

/// What `current.json` and each epoch's `progress.json` hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProgressFile {
    /// Epochs completed (1-based count).
    epochs_done: usize,
    history: Vec<EpochRecord>,
    /// Selected epoch so far, its score and its test embeddings' width.
    best: Option<(usize, f64, usize)>,
    /// How far the epoch after `epochs_done` got (a state saved between its steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<WithinEpoch>,
}

/// How far an epoch got: its steps done, the sums of their losses and where its mining
/// generator stands, all a resumed epoch needs to go on as if never stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithinEpoch {
    pub steps_done: usize,
    pub total: f64,
    pub metric: f64,
    pub diversity: f64,
    /// The mining generator's word position (a u128, as decimal text).
    pub mining: String,
}

/// The modules and optimisers of a run after a completed epoch.
pub struct TrainState {
    pub model: Embedder,
    pub model_optimizer: ModuleOptimizer,
    pub criterion: MetricLoss,
    pub loss_optimizer: ModuleOptimizer,
}

/// How far a run is: epochs done, their history, the selected epoch so far and how far the
/// next epoch got.
#[derive(Debug, Clone, Default)]
pub struct RunProgress {
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    pub best: KeepBest,
    pub within: Option<WithinEpoch>,
}

fn state_dir(dir: &Path, epochs_done: usize, within: Option<&WithinEpoch>) -> PathBuf {
    match within {
        None => dir.join(format!("epoch-{epochs_done}")),
        Some(w) => dir.join(format!("epoch-{epochs_done}-step-{}", w.steps_done)),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Saves `state` and `progress` under `dir` and points `current.json` at them.
pub fn save(dir: &Path, state: &TrainState, progress: &RunProgress) -> anyhow::Result<()> {
    let target = state_dir(dir, progress.epochs_done, progress.within.as_ref());
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    let write = |name: &str, bytes: &[u8]| write_atomic(&target.join(name), bytes);
    write(
        "model.bpk",
        &state.model.clone().into_record().into_bytes()?,
    )?;
    write("model-optimizer.bpk", &state.model_optimizer.into_bytes()?)?;
    write(
        "loss.bpk",
        &state.criterion.clone().into_record().into_bytes()?,
    )?;
    write("loss-optimizer.bpk", &state.loss_optimizer.into_bytes()?)?;
    if let Some(best) = &progress.best.best {
        write("best.bpk", &best.checkpoint)?;
        write("best-embeddings.f32", &f32_bytes(&best.test_embeddings))?;
        write("best-gallery.f32", &f32_bytes(&best.gallery_embeddings))?;
        if let Some((maps, dims)) = &best.attention_maps {
            write("best-attention.npy", &f32_npy(maps, dims))?;
        }
    }
    let file = ProgressFile {
        epochs_done: progress.epochs_done,
        history: progress.history.clone(),
        best: progress
            .best
            .best
            .as_ref()
            .map(|b| (b.epoch, b.score, b.embedding_dim)),
        within: progress.within.clone(),
    };
    let text = serde_json::to_string(&exact_floats(serde_json::to_value(&file)?))?;
    write("progress.json", text.as_bytes())?;
    // The pointer last: before it moves, the previous epoch stays the one to resume from.
    write_atomic(&dir.join(STATE_CURRENT), text.as_bytes())?;
    for entry in fs::read_dir(dir)?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() && path != target {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Loads the last complete state under `dir` into the freshly built parts of `fresh`, or
/// `None` when there is none. Parameter ids come back with the weights, so optimiser state
/// reattaches to the optimiser that `model_optimizer_for` builds for the loaded model.
pub fn load(
    dir: &Path,
    fresh: TrainState,
    model_optimizer_for: impl FnOnce(&Embedder) -> ModuleOptimizer,
) -> anyhow::Result<Option<(TrainState, RunProgress)>> {
    let Ok(text) = fs::read_to_string(dir.join(STATE_CURRENT)) else {
        return Ok(None);
    };
    let file: ProgressFile = serde_json::from_str(&text)
        .map(restore_floats)
        .and_then(serde_json::from_value)
        .context("reading the resume state")?;
    let source = state_dir(dir, file.epochs_done, file.within.as_ref());
    let read = |name: &str| -> anyhow::Result<Bytes> {
        let path = source.join(name);
        Ok(Bytes::from_bytes_vec(
            fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        ))
    };
    let model = fresh
        .model
        .try_load_record(ModuleRecord::from_bytes(read("model.bpk")?)?)?;
    let model_optimizer = model_optimizer_for(&model).from_bytes(read("model-optimizer.bpk")?)?;
    let criterion = fresh
        .criterion
        .try_load_record(ModuleRecord::from_bytes(read("loss.bpk")?)?)?;
    let loss_optimizer = fresh
        .loss_optimizer
        .from_bytes(read("loss-optimizer.bpk")?)?;
    let best = match file.best {
        Some((epoch, score, embedding_dim)) => Some(Best {
            score,
            epoch,
            checkpoint: read("best.bpk")?.to_vec(),
            test_embeddings: f32s(&read("best-embeddings.f32")?),
            gallery_embeddings: f32s(&read("best-gallery.f32")?),
            attention_maps: match read_npy(&source.join("best-attention.npy")) {
                Ok(NpyArray {
                    shape,
                    values: NpyValues::Float(maps),
                }) => Some((
                    maps,
                    shape[..].try_into().context("best-attention.npy: 4-D")?,
                )),
                _ => None,
            },
            embedding_dim,
        }),
        None => None,
    };
    let state = TrainState {
        model,
        model_optimizer,
        criterion,
        loss_optimizer,
    };
    let progress = RunProgress {
        epochs_done: file.epochs_done,
        history: file.history,
        best: KeepBest { best },
        within: file.within,
    };
    Ok(Some((state, progress)))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Floats as their bit patterns (`"f64:<hex>"`): JSON text round trips of f64 are not exact
/// with serde_json's default parser, and a resumed run must reproduce its history bit for bit.
fn exact_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            Value::String(format!("f64:{:016x}", n.as_f64().expect("f64").to_bits()))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(exact_floats).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        other => other,
    }
}

/// The inverse of [`exact_floats`].
fn restore_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.starts_with("f64:") => u64::from_str_radix(&s[4..], 16)
            .ok()
            .and_then(|bits| serde_json::Number::from_f64(f64::from_bits(bits)))
            .map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(restore_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, restore_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_survive_the_state_file_bit_for_bit() {
        let values = [0.9931781819056879f64, 0.1 + 0.2, 1e-300, 123.0, -0.0];
        let value = serde_json::json!({ "m": values, "epoch": 3 });
        let text = serde_json::to_string(&exact_floats(value.clone())).unwrap();
        let back = restore_floats(serde_json::from_str(&text).unwrap());
        let got: Vec<f64> = serde_json::from_value(back["m"].clone()).unwrap();
        for (a, b) in values.iter().zip(&got) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert_eq!(back["epoch"], 3);
    }
}
