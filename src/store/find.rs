//! A run named by a prefix of its hash, as git names commits: `agml show 01337e`.

use super::RunStore;
use super::settings::{self, axis_values};
use crate::error::BadInput;

/// The fewest hex digits that name a run.
pub const MIN_PREFIX: usize = 6;

impl RunStore {
    /// The hash of the one run folder whose hash starts with `prefix` (at least
    /// [`MIN_PREFIX`] hex digits, either case). Bad input when the prefix is too short, names
    /// no run, or names several (each listed with its axis values).
    pub fn find_run(&self, prefix: &str) -> Result<String, BadInput> {
        let prefix = hash_prefix(prefix).ok_or_else(|| {
            BadInput::new(format!(
                "`{prefix}`: a run is named by {MIN_PREFIX} to 64 hex digits of its hash"
            ))
        })?;
        let mut found: Vec<String> = self
            .run_folders()
            .filter(|name| name.len() == 64 && is_hex(name) && name.starts_with(&prefix))
            .collect();
        found.sort();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(BadInput::new(format!(
                "{}: no run starts with {prefix} (a cell has a folder once it starts; \
                 `agml plan MATRIX --json` shows a pending cell's configuration)",
                self.root().display()
            ))),
            n => {
                let names: Vec<String> = (found.iter())
                    .map(|hash| {
                        let values = settings::read(&self.run_dir(hash))
                            .map_or_else(|| "no readable cell.toml".into(), |s| axis_values(&s));
                        format!("{} ({values})", &hash[..12])
                    })
                    .collect();
                Err(BadInput::new(format!(
                    "{}: {prefix} names {n} runs: {}",
                    self.root().display(),
                    names.join(", ")
                )))
            }
        }
    }
}

/// `text` lowercased when it can name a run or cell: [`MIN_PREFIX`] to 64 hex digits.
pub fn hash_prefix(text: &str) -> Option<String> {
    let prefix = text.to_ascii_lowercase();
    let length = (MIN_PREFIX..=64).contains(&prefix.len());
    (length && is_hex(&prefix)).then_some(prefix)
}

fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_prefix_names_one_run_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let (a, b) = (
            format!("abcdef{}", "0".repeat(58)),
            format!("abcdee{}", "1".repeat(58)),
        );
        for hash in [&a, &b] {
            fs::create_dir_all(store.run_dir(hash)).unwrap();
        }
        fs::write(
            store.run_dir(&a).join("cell.toml"),
            "seed = 3\nhead = \"none\"\n",
        )
        .unwrap();
        assert_eq!(store.find_run("abcdef").unwrap(), a);
        assert_eq!(store.find_run("ABCDEE1").unwrap(), b);
        assert_eq!(store.find_run(&a).unwrap(), a);
        let error = |prefix: &str| store.find_run(prefix).unwrap_err().to_string();
        let none = error("abcde0");
        assert!(none.contains("no run starts with abcde0 ("), "{none}");
        let short = error("abcde");
        assert!(short.contains("6 to 64 hex digits"), "{short}");
        assert!(error("abcdeg").contains("hex digits"));
    }

    #[test]
    fn an_ambiguous_prefix_lists_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        for tail in ["0", "1"] {
            let hash = format!("123456{}", tail.repeat(58));
            fs::create_dir_all(store.run_dir(&hash)).unwrap();
            fs::write(
                store.run_dir(&hash).join("cell.toml"),
                format!("seed = {tail}\n"),
            )
            .unwrap();
        }
        let message = store.find_run("123456").unwrap_err().to_string();
        assert!(
            message.contains("123456 names 2 runs: 123456000000 ("),
            "{message}"
        );
        assert!(
            message.contains("seed=0)") && message.contains("seed=1)"),
            "{message}"
        );
    }
}
