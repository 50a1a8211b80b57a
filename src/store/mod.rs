//! The run store: `results/runs/<hash>/` holds each run's artifacts; a run is done once its
//! manifest (written last, atomically) is in place and matches its hash.

pub mod atomic;
pub mod checksum;
pub mod find;
pub mod lock;
pub mod manifest;
pub mod run_files;
pub mod settings;
pub mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use atomic::write_atomic;
pub use checksum::hex_sha256;
pub use lock::RunLock;
pub use manifest::{Failure, Machine, Manifest, Provenance, utc_now};
pub use run_files::{EmbeddedSet, RunFile, STATE_CURRENT, STATE_DIR};
pub use verify::{Mismatch, verify_run, verify_store};

/// What the store holds for one hash.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Finished under the current semantics.
    Done(Box<Manifest>),
    /// Finished under another semantics version.
    Stale(Box<Manifest>),
    /// Failed; the reason is kept.
    Failed(Failure),
    /// Never started (or begun too briefly to write its cell.toml).
    Pending,
    /// Begun, and its lock held: a process is training it now.
    Training,
    /// Begun, neither finished nor failed, and no process holds its lock: its process died
    /// without a word (SIGKILL, the OOM killer, a lost node). `run` resumes it.
    Interrupted {
        /// Epochs in its resume state (0: killed before the first one ended).
        epochs_done: usize,
    },
}

impl RunState {
    /// The word `plan` and `status` print.
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Done(_) => "done",
            RunState::Stale(_) => "stale",
            RunState::Failed(_) => "failed",
            RunState::Pending => "pending",
            RunState::Training => "training",
            RunState::Interrupted { .. } => "interrupted",
        }
    }
}

/// Epochs of a run's resume state (`state/current.json`, written by `train::resume`), 0 when
/// it has none.
fn resume_epochs(dir: &Path) -> usize {
    fs::read_to_string(dir.join(STATE_DIR).join(STATE_CURRENT))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| value["epochs_done"].as_u64())
        .map_or(0, |epochs| epochs as usize)
}

/// The bytes of the files under `dir`, its folders included (a run's resume state) and the newest one's
/// modification time.
pub fn size_and_newest(dir: &Path) -> anyhow::Result<(u64, Option<std::time::SystemTime>)> {
    let (mut bytes, mut newest) = (0, None);
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let (size, modified) = if meta.is_dir() {
            size_and_newest(&entry.path())?
        } else {
            (meta.len(), meta.modified().ok())
        };
        bytes += size;
        newest = newest.max(modified);
    }
    Ok((bytes, newest))
}

/// A results folder.
#[derive(Debug, Clone)]
pub struct RunStore {
    root: PathBuf,
}

impl RunStore {
    /// The store under `root` (created when the first run is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The results folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `runs/<hash>/`.
    pub fn run_dir(&self, hash: &str) -> PathBuf {
        self.root.join("runs").join(hash)
    }

    /// The state of `hash`; `semantics` is the current training-semantics version.
    pub fn state(&self, hash: &str, semantics: u32) -> RunState {
        let dir = self.run_dir(hash);
        if let Ok(text) = fs::read_to_string(dir.join(RunFile::Manifest.name()))
            && let Ok(manifest) = serde_json::from_str::<Manifest>(&text)
            && manifest.hash == hash
        {
            return if manifest.semantics == semantics {
                RunState::Done(Box::new(manifest))
            } else {
                RunState::Stale(Box::new(manifest))
            };
        }
        if let Ok(text) = fs::read_to_string(dir.join(RunFile::Failure.name()))
            && let Ok(failure) = serde_json::from_str::<Failure>(&text)
        {
            return RunState::Failed(failure);
        }
        if !dir.join(RunFile::Cell.name()).exists() {
            return RunState::Pending;
        }
        match self.is_locked(hash) {
            Ok(true) => RunState::Training,
            // A lock that cannot be probed is not evidence of a live writer.
            Ok(false) | Err(_) => RunState::Interrupted {
                epochs_done: resume_epochs(&dir),
            },
        }
    }

    /// Hashes of the runs done at `semantics`, sorted (a store read without its matrix).
    pub fn done_runs(&self, semantics: u32) -> Vec<String> {
        let mut hashes: Vec<String> = self
            .run_folders()
            .filter(|hash| matches!(self.state(hash, semantics), RunState::Done(_)))
            .collect();
        hashes.sort();
        hashes
    }

    /// The names of the folders under `runs/`, unsorted (none when there is no such folder).
    fn run_folders(&self) -> impl Iterator<Item = String> {
        fs::read_dir(self.root.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
    }

    /// Starts (or restarts) writing the run `hash`: the folder exists and holds no manifest
    /// and no failure record, so it cannot be mistaken for a finished run.
    pub fn begin(&self, hash: &str) -> anyhow::Result<RunWriter> {
        let dir = self.run_dir(hash);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in [RunFile::Manifest.name(), RunFile::Failure.name()] {
            match fs::remove_file(dir.join(name)) {
                Ok(()) => atomic::sync_dir(&dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("removing {}", dir.join(name).display()));
                }
            }
        }
        Ok(RunWriter {
            hash: hash.to_string(),
            dir,
            artifacts: BTreeMap::new(),
        })
    }
}

/// Writes one run's artifacts, then its manifest.
#[derive(Debug)]
pub struct RunWriter {
    hash: String,
    dir: PathBuf,
    artifacts: BTreeMap<String, String>,
}

impl RunWriter {
    /// The run folder (for artifacts written by others, such as checkpoints).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes an artifact atomically and records its checksum.
    pub fn write(&mut self, file: RunFile, bytes: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.dir.join(file.name()), bytes)?;
        self.artifacts
            .insert(file.name().to_string(), hex_sha256(bytes));
        Ok(())
    }

    /// Writes the manifest last: from now on the run is done.
    pub fn finish(self, semantics: u32, provenance: Provenance) -> anyhow::Result<Manifest> {
        let manifest = Manifest {
            hash: self.hash,
            semantics,
            artifacts: self.artifacts,
            provenance,
        };
        let text = serde_json::to_string_pretty(&manifest)?;
        write_atomic(&self.dir.join(RunFile::Manifest.name()), text.as_bytes())?;
        Ok(manifest)
    }

    /// Records why the run failed (it stays not done).
    pub fn fail(self, reason: &str) -> anyhow::Result<()> {
        let failure = Failure {
            hash: self.hash,
            reason: reason.to_string(),
            at: utc_now(),
        };
        write_atomic(
            &self.dir.join(RunFile::Failure.name()),
            serde_json::to_string_pretty(&failure)?.as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::test_provenance;

    #[test]
    fn a_run_is_done_only_after_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let hash = "ab".repeat(32);
        assert_eq!(store.state(&hash, 1), RunState::Pending);
        let mut writer = store.begin(&hash).unwrap();
        writer.write(RunFile::Metrics, b"{}").unwrap();
        assert_eq!(store.state(&hash, 1), RunState::Pending);
        let manifest = writer.finish(1, test_provenance()).unwrap();
        assert_eq!(manifest.artifacts["metrics.json"], hex_sha256(b"{}"));
        assert_eq!(store.state(&hash, 1).label(), "done");
        assert_eq!(store.state(&hash, 2).label(), "stale");
        // Restarting removes the manifest first.
        let writer = store.begin(&hash).unwrap();
        assert_eq!(store.state(&hash, 1), RunState::Pending);
        writer.fail("NaN loss at epoch 1").unwrap();
        assert_eq!(store.state(&hash, 1).label(), "failed");
    }

    #[test]
    fn a_begun_run_is_running_while_locked_and_interrupted_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let hash = "cd".repeat(32);
        let lock = store.try_lock(&hash).unwrap().expect("free");
        let mut writer = store.begin(&hash).unwrap();
        writer.write(RunFile::Cell, b"seed = 0\n").unwrap();
        assert_eq!(store.state(&hash, 1), RunState::Training);
        // The writer's process dies: its lock goes with it.
        drop(lock);
        assert_eq!(
            store.state(&hash, 1),
            RunState::Interrupted { epochs_done: 0 }
        );
        let state = store.run_dir(&hash).join(STATE_DIR);
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join(STATE_CURRENT), br#"{"epochs_done": 3}"#).unwrap();
        assert_eq!(
            store.state(&hash, 1),
            RunState::Interrupted { epochs_done: 3 }
        );
        // Probing leaves the lock free for the next writer.
        assert!(store.try_lock(&hash).unwrap().is_some());
        writer.fail("NaN loss").unwrap();
        assert_eq!(store.state(&hash, 1).label(), "failed");
    }

    #[test]
    fn a_manifest_of_another_hash_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        store
            .begin(&a)
            .unwrap()
            .finish(1, test_provenance())
            .unwrap();
        fs::create_dir_all(store.run_dir(&b)).unwrap();
        fs::copy(
            store.run_dir(&a).join(RunFile::Manifest.name()),
            store.run_dir(&b).join(RunFile::Manifest.name()),
        )
        .unwrap();
        assert_eq!(store.state(&b, 1), RunState::Pending);
    }
}
