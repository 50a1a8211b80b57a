//! Garbage: run folders that no matrix names any more, and temp files left by killed writers.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::store::settings::{self, Change, axis_values, differences, flatten};
use crate::store::{RunFile, RunStore, size_and_newest};

/// What `agml gc` would remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Garbage {
    /// Run folders whose hash no matrix names.
    pub runs: Vec<PathBuf>,
    /// `.<name>.tmp-<pid>` files of interrupted atomic writes inside named runs.
    pub temps: Vec<PathBuf>,
    /// Unnamed run folders left alone because a process holds their lock.
    pub busy: Vec<PathBuf>,
}

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"))
}

/// The garbage of `store` given the hashes that matrices name.
pub fn find_garbage(store: &RunStore, named: &HashSet<String>) -> anyhow::Result<Garbage> {
    let runs = store.root().join("runs");
    let mut garbage = Garbage::default();
    let entries = match fs::read_dir(&runs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(garbage),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", runs.display()))),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let hash = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !named.contains(&hash) {
            // A run another process is writing is not garbage yet.
            match store.try_lock(&hash)? {
                Some(_lock) => garbage.runs.push(dir),
                None => garbage.busy.push(dir),
            }
            continue;
        }
        let mut temps: Vec<PathBuf> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_temp(p))
            .collect();
        temps.sort();
        garbage.temps.extend(temps);
    }
    Ok(garbage)
}

/// What a user needs to decide about an unnamed run before it goes: what it was, how far it
/// got, what it weighs, how old it is, and the matrix cell it most resembles.
#[derive(Debug, PartialEq)]
pub struct RunInfo {
    pub dir: PathBuf,
    /// `done`, `failed` or `unfinished`.
    pub state: &'static str,
    pub bytes: u64,
    /// Since the run's newest file was written.
    pub age: Option<Duration>,
    /// The run's axis values as its cell.toml has them (`fashion-mnist convnet-small ...`).
    pub values: String,
    /// The named cell whose configuration differs from the run's in the fewest values, when
    /// it differs in at most [`CLOSE`]: most often the same cell after an edit of the matrix.
    pub closest: Option<Closest>,
}

/// A named cell like an unnamed run.
#[derive(Debug, PartialEq)]
pub struct Closest {
    pub matrix: PathBuf,
    pub values: String,
    /// Each setting that differs: the run's value (`a`), the cell's (`b`).
    pub changes: Vec<Change>,
}

/// Most values in which a named cell may differ from a run and still be called like it.
pub const CLOSE: usize = 4;

/// A cell that a matrix names: its matrix file, axis values and configuration.
pub struct NamedCell {
    pub matrix: PathBuf,
    pub values: String,
    pub config: toml::Value,
}

/// Describes the unnamed run in `dir` against the cells the matrices name.
pub fn describe(dir: &Path, named: &[NamedCell]) -> anyhow::Result<RunInfo> {
    let (bytes, newest) = size_and_newest(dir)?;
    let has = |file: RunFile| dir.join(file.name()).exists();
    let state = if has(RunFile::Metrics) {
        "done"
    } else if has(RunFile::Failure) {
        "failed"
    } else {
        "unfinished"
    };
    let (values, closest) = match settings::read(dir) {
        None => ("no readable cell.toml".to_string(), None),
        Some(ours) => {
            let closest = named
                .iter()
                .map(|cell| (cell, differences(&ours, &flatten(&cell.config))))
                .min_by_key(|(_, changes)| changes.len())
                .filter(|(_, changes)| changes.len() <= CLOSE)
                .map(|(cell, changes)| Closest {
                    matrix: cell.matrix.clone(),
                    values: cell.values.clone(),
                    changes,
                });
            (axis_values(&ours), closest)
        }
    };
    Ok(RunInfo {
        dir: dir.to_path_buf(),
        state,
        bytes,
        age: newest.and_then(|t| t.elapsed().ok()),
        values,
        closest,
    })
}

/// Removes what `find_garbage` found; a run some process started writing since is kept.
pub fn delete_garbage(store: &RunStore, garbage: &Garbage) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in &garbage.runs {
        let Some(_lock) = store.try_lock(&hash_of(dir))? else {
            continue;
        };
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        removed.push(dir.clone());
    }
    remove_temps(garbage)?;
    Ok(removed)
}

/// Moves the runs `find_garbage` found into the store `archive` (same layout: `archive/runs/
/// <hash>`), each whole or not at all, and removes the temp files; a run some process started
/// writing since is kept, and one the archive holds already stops the move.
pub fn archive_garbage(
    store: &RunStore,
    garbage: &Garbage,
    archive: &RunStore,
) -> anyhow::Result<Vec<PathBuf>> {
    let runs = archive.root().join("runs");
    fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    let mut moved = Vec::new();
    for dir in &garbage.runs {
        let hash = hash_of(dir);
        let target = runs.join(&hash);
        if target.exists() {
            anyhow::bail!(
                "{} exists already: not moving {}",
                target.display(),
                dir.display()
            );
        }
        let Some(lock) = store.try_lock(&hash)? else {
            continue;
        };
        if fs::rename(dir, &target).is_err() {
            // Another file system: copy under a temp name, then rename it into place, so the
            // archive never holds half a run.
            let partial = runs.join(format!(".{hash}.tmp-{}", std::process::id()));
            copy_dir(dir, &partial)?;
            fs::rename(&partial, &target)
                .with_context(|| format!("renaming {}", partial.display()))?;
            drop(lock);
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        moved.push(target);
    }
    remove_temps(garbage)?;
    Ok(moved)
}

fn remove_temps(garbage: &Garbage) -> anyhow::Result<()> {
    for file in &garbage.temps {
        fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    }
    Ok(())
}

fn hash_of(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Copies the files of run folder `from` (runs hold files only) into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().expect("a file name"));
        fs::copy(&path, &target).with_context(|| format!("copying {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunFile;

    #[test]
    fn finds_unnamed_runs_and_temp_leftovers_and_deletes_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let (kept, orphan, busy) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        for hash in [&kept, &orphan, &busy] {
            store
                .begin(hash)
                .unwrap()
                .write(RunFile::Metrics, b"{}")
                .unwrap();
        }
        let leftover = store.run_dir(&kept).join(".history.csv.tmp-4242");
        fs::write(&leftover, b"half").unwrap();
        let _held = store.try_lock(&busy).unwrap().unwrap();
        let named: HashSet<String> = [kept.clone()].into();
        let garbage = find_garbage(&store, &named).unwrap();
        assert_eq!(garbage.runs, vec![store.run_dir(&orphan)]);
        assert_eq!(garbage.temps, vec![leftover.clone()]);
        assert_eq!(garbage.busy, vec![store.run_dir(&busy)]);
        assert_eq!(
            delete_garbage(&store, &garbage).unwrap(),
            vec![store.run_dir(&orphan)]
        );
        assert!(!store.run_dir(&orphan).exists() && !leftover.exists());
        assert!(store.run_dir(&kept).join(RunFile::Metrics.name()).exists());
        assert!(store.run_dir(&busy).exists());
    }

    fn cell(epochs: i64, seed: i64) -> toml::Value {
        toml::toml! {
            head = "attentive"
            groups = 8
            embedding_size = 64
            seed = seed
            [dataset]
            name = "fashion-mnist"
            [backbone]
            name = "convnet-small"
            [loss]
            name = "margin"
            [train]
            epochs = epochs
        }
        .into()
    }

    #[test]
    fn an_unnamed_run_is_described_by_the_matrix_cell_it_most_resembles() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let hash = "d".repeat(64);
        let mut writer = store.begin(&hash).unwrap();
        writer
            .write(
                RunFile::Cell,
                toml::to_string(&cell(2, 0)).unwrap().as_bytes(),
            )
            .unwrap();
        writer.write(RunFile::Metrics, b"{}").unwrap();
        let named = |epochs, seed| NamedCell {
            matrix: PathBuf::from("experiments/fm.toml"),
            values: format!("seed {seed}"),
            config: cell(epochs, seed),
        };
        let info = describe(&store.run_dir(&hash), &[named(3, 1), named(3, 0)]).unwrap();
        assert_eq!((info.state, info.bytes > 0), ("done", true));
        assert_eq!(
            info.values,
            "fashion-mnist convnet-small attentive margin D=64 P=8 seed=0"
        );
        let closest = info.closest.expect("a close cell");
        assert_eq!(closest.values, "seed 0");
        let changes: Vec<String> = closest.changes.iter().map(Change::arrow).collect();
        assert_eq!(changes, ["train.epochs 2 -> 3"]);
        // Nothing alike: no closest cell.
        let far = NamedCell {
            config: toml::toml! { other = 1 }.into(),
            ..named(3, 0)
        };
        assert_eq!(
            describe(&store.run_dir(&hash), &[far]).unwrap().closest,
            None
        );
    }

    #[test]
    fn archiving_moves_whole_runs_and_never_over_an_archived_one() {
        let dir = tempfile::tempdir().unwrap();
        let (store, archive) = (
            RunStore::new(dir.path().join("results")),
            RunStore::new(dir.path().join("archive")),
        );
        let hash = "e".repeat(64);
        store
            .begin(&hash)
            .unwrap()
            .write(RunFile::Metrics, b"{}")
            .unwrap();
        let garbage = find_garbage(&store, &HashSet::new()).unwrap();
        let moved = archive_garbage(&store, &garbage, &archive).unwrap();
        assert_eq!(moved, vec![archive.run_dir(&hash)]);
        assert!(!store.run_dir(&hash).exists());
        assert_eq!(
            fs::read(archive.run_dir(&hash).join(RunFile::Metrics.name())).unwrap(),
            b"{}"
        );
        // The same run again: the archived one stays as it is, the new one where it is.
        store
            .begin(&hash)
            .unwrap()
            .write(RunFile::Metrics, b"[]")
            .unwrap();
        let garbage = find_garbage(&store, &HashSet::new()).unwrap();
        assert!(archive_garbage(&store, &garbage, &archive).is_err());
        assert!(store.run_dir(&hash).join(RunFile::Metrics.name()).exists());
        assert_eq!(
            fs::read(archive.run_dir(&hash).join(RunFile::Metrics.name())).unwrap(),
            b"{}"
        );
    }
}
