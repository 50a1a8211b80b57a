//! One writer per run: an exclusive advisory lock on `runs/<hash>/.lock` held while the run
//! trains and stores. The operating system drops it when its process dies, so a crashed
//! writer leaves no lock to clean up.

use std::fs::{self, File, OpenOptions};

use anyhow::Context;
use fs2::FileExt;

use super::RunStore;

/// A held run lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunStore {
    /// Takes the lock of run `hash`, or `None` when another process holds it.
    pub fn try_lock(&self, hash: &str) -> anyhow::Result<Option<RunLock>> {
        let dir = self.run_dir(hash);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("locking {}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let hash = "c".repeat(64);
        let first = store.try_lock(&hash).unwrap();
        assert!(first.is_some());
        assert!(store.try_lock(&hash).unwrap().is_none());
        drop(first);
        assert!(store.try_lock(&hash).unwrap().is_some());
    }
}
