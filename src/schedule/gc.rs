//! Garbage: run folders that no matrix names any more, and temp files left by killed writers.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::RunStore;

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

/// Removes what `find_garbage` found.
pub fn delete_garbage(garbage: &Garbage) -> anyhow::Result<()> {
    for dir in &garbage.runs {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for file in &garbage.temps {
        fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
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
        delete_garbage(&garbage).unwrap();
        assert!(!store.run_dir(&orphan).exists() && !leftover.exists());
        assert!(store.run_dir(&kept).join(RunFile::Metrics.name()).exists());
        assert!(store.run_dir(&busy).exists());
    }
}
