//! A run's effective configuration (its `cell.toml`) as settings by dotted key: what `gc`,
//! `show` and `diff` compare and print.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::RunFile;

/// Every leaf of a configuration by dotted key (`loss.margin` -> `0.2`).
pub type Settings = BTreeMap<String, toml::Value>;

/// The settings of the run in `dir`, None when it has no readable cell.toml.
pub fn read(dir: &Path) -> Option<Settings> {
    let text = std::fs::read_to_string(dir.join(RunFile::Cell.name())).ok()?;
    Some(flatten(&toml::Value::Table(text.parse().ok()?)))
}

/// The settings of a configuration.
pub fn flatten(value: &toml::Value) -> Settings {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Settings) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = match prefix {
                        "" => key.clone(),
                        _ => format!("{prefix}.{key}"),
                    };
                    walk(&key, value, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = Settings::new();
    walk("", value, &mut out);
    out
}

/// A setting that differs between two configurations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub key: String,
    /// The first one's value; None where it lacks the key.
    pub a: Option<toml::Value>,
    /// The second one's.
    pub b: Option<toml::Value>,
}

impl Change {
    /// `key a -> b` as TOML writes the values, `-` for a missing one.
    pub fn arrow(&self) -> String {
        format!("{} {} -> {}", self.key, shown(&self.a), shown(&self.b))
    }
}

/// A value as TOML writes it, `-` when there is none.
pub fn shown(value: &Option<toml::Value>) -> String {
    value.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}

/// Every key whose value differs or that one side lacks, in key order.
pub fn differences(a: &Settings, b: &Settings) -> Vec<Change> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|key| a.get(*key) != b.get(*key))
        .map(|key| Change {
            key: key.clone(),
            a: a.get(key).cloned(),
            b: b.get(key).cloned(),
        })
        .collect()
}

/// The axis values of a run's settings, as `agml status` writes them
/// (`fashion-mnist convnet-small attentive margin D=64 P=8 seed=0`).
pub fn axis_values(settings: &Settings) -> String {
    let get = |key: &str| {
        settings
            .get(key)
            .map(|v| match v {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} {} {} {} D={} P={} seed={}",
        get("dataset.name"),
        get("backbone.name"),
        get("head"),
        get("loss.name"),
        get("embedding_size"),
        get("groups"),
        get("seed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_tables_become_dotted_keys_and_differences_name_both_sides() {
        let a: toml::Value =
            toml::from_str("seed = 0\n[loss]\nname = \"margin\"\nalpha = 0.2\n").unwrap();
        let b: toml::Value = toml::from_str("seed = 1\n[loss]\nname = \"margin\"\n").unwrap();
        let (a, b) = (flatten(&a), flatten(&b));
        assert_eq!(a["loss.alpha"], toml::Value::Float(0.2));
        assert_eq!(a["loss.name"].to_string(), "\"margin\"");
        let arrows: Vec<String> = differences(&a, &b).iter().map(Change::arrow).collect();
        assert_eq!(arrows, ["loss.alpha 0.2 -> -", "seed 0 -> 1"]);
        assert!(differences(&a, &a).is_empty());
        assert_eq!(axis_values(&a), "? ? ? margin D=? P=? seed=0");
    }
}
