//! The cell hash: sha256 of the canonical JSON of the effective configuration.
//!
//! Canonical: typed values with defaults applied (so spelling a default out changes nothing),
//! object keys sorted, no whitespace, floats in their shortest round-trip form (so `1e-3` and
//! `0.001` are the same number).

use serde::Serialize;
use serde_json::Value;

use crate::store::checksum::hex_sha256;

/// Canonical JSON text of any serialisable value.
pub fn canonical_json<T: Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("configurations serialise to JSON");
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Lowercase hex sha256 of the canonical JSON of `value`.
pub fn config_hash<T: Serialize>(value: &T) -> String {
    hex_sha256(canonical_json(value).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"z": [1.5, {"y": 0, "x": 1}], "c": "s"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"s","z":[1.5,{"x":1,"y":0}]},"b":1}"#
        );
    }
}
