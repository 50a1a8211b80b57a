//! One writer per run: an exclusive advisory lock on `runs/<hash>/.lock` held while the run
//! trains and stores. The operating system drops it when its process dies, so a crashed
//! writer leaves no lock to clean up.

use std::fs::{self, File, OpenOptions};

use anyhow::Context;
use fs2::FileExt;

use super::RunStore;

/// Tries at a contended lock before it counts as another writer's.
const PROBE_RETRIES: usize = 5;

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
        // A few tries: `is_locked` (status, plan) holds a shared lock for an instant.
        for attempt in 0..PROBE_RETRIES {
            match file.try_lock_exclusive() {
                Ok(()) => return Ok(Some(RunLock { _file: file })),
                Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                    if attempt + 1 < PROBE_RETRIES {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("locking {}", path.display()))
                    );
                }
            }
        }
        Ok(None)
    }
}

impl RunStore {
    /// Whether a process holds the lock of run `hash`, probed with a shared lock that is let go
    /// at once (a writer that meets it retries: see `try_lock`); false without a lock file.
    pub fn is_locked(&self, hash: &str) -> anyhow::Result<bool> {
        let path = self.run_dir(hash).join(".lock");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())));
            }
        };
        match FileExt::try_lock_shared(&file) {
            Ok(()) => Ok(false),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => Ok(true),
            Err(e) => Err(anyhow::Error::new(e).context(format!("probing {}", path.display()))),
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
