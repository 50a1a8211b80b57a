//! Verification: re-hash every artifact a manifest lists and name each one that does not
//! match (changed, truncated or missing).

use std::fs;

use super::checksum::hex_sha256;
use super::{Manifest, RunFile, RunStore};

/// An artifact that does not match its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub hash: String,
    pub artifact: String,
    /// `missing`, `changed`, or why the manifest itself cannot be read.
    pub problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "runs/{}/{}: {}", self.hash, self.artifact, self.problem)
    }
}

/// The artifacts of one finished run that do not match its manifest.
pub fn verify_run(store: &RunStore, manifest: &Manifest) -> Vec<Mismatch> {
    let dir = store.run_dir(&manifest.hash);
    manifest
        .artifacts
        .iter()
        .filter_map(|(name, expected)| {
            let problem = match fs::read(dir.join(name)) {
                Err(_) => "missing".to_string(),
                Ok(bytes) if hex_sha256(&bytes) != *expected => {
                    "changed (sha256 differs from the manifest)".to_string()
                }
                Ok(_) => return None,
            };
            Some(Mismatch {
                hash: manifest.hash.clone(),
                artifact: name.clone(),
                problem,
            })
        })
        .collect()
}

/// Every run folder of the store with a manifest: (runs checked, artifacts checked, mismatches).
pub fn verify_store(store: &RunStore) -> anyhow::Result<(usize, usize, Vec<Mismatch>)> {
    let runs = store.root().join("runs");
    let mut entries: Vec<_> = match fs::read_dir(&runs) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", runs.display()))),
    };
    entries.sort();
    let (mut checked, mut artifacts, mut mismatches) = (0, 0, Vec::new());
    for dir in entries {
        let hash = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(text) = fs::read_to_string(dir.join(RunFile::Manifest.name())) else {
            continue; // not finished: nothing claims to be done
        };
        checked += 1;
        match serde_json::from_str::<Manifest>(&text) {
            Ok(manifest) if manifest.hash == hash => {
                artifacts += manifest.artifacts.len();
                mismatches.extend(verify_run(store, &manifest));
            }
            Ok(manifest) => mismatches.push(Mismatch {
                hash: hash.clone(),
                artifact: RunFile::Manifest.name().into(),
                problem: format!("names another run ({})", manifest.hash),
            }),
            Err(e) => mismatches.push(Mismatch {
                hash: hash.clone(),
                artifact: RunFile::Manifest.name().into(),
                problem: format!("unreadable: {e}"),
            }),
        }
    }
    Ok((checked, artifacts, mismatches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::test_provenance;

    #[test]
    fn names_changed_and_missing_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        for hash in [&a, &b] {
            let mut writer = store.begin(hash).unwrap();
            writer.write(RunFile::Metrics, b"{\"x\": 1}").unwrap();
            writer.write(RunFile::History, b"epoch\n1\n").unwrap();
            writer.finish(1, test_provenance()).unwrap();
        }
        assert_eq!(verify_store(&store).unwrap(), (2, 4, vec![]));
        fs::write(
            store.run_dir(&a).join(RunFile::Metrics.name()),
            b"{\"x\": 2}",
        )
        .unwrap();
        fs::remove_file(store.run_dir(&b).join(RunFile::History.name())).unwrap();
        let (runs, _, problems) = verify_store(&store).unwrap();
        assert_eq!(runs, 2);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(&format!("runs/{a}/metrics.json: changed")));
        assert!(lines[1].starts_with(&format!("runs/{b}/history.csv: missing")));
    }
}
