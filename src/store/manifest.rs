//! The manifest: written last, it is what makes a run done. It lists every artifact's sha256
//! and the run's provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `manifest.json` of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The cell hash (the run folder's name).
    pub hash: String,
    /// Version of what a run computes; runs of another version are stale.
    pub semantics: u32,
    /// Artifact file name -> lowercase hex sha256.
    pub artifacts: BTreeMap<String, String>,
    pub provenance: Provenance,
}

/// Where, when and with what a run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub agml_version: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub backend: String,
    pub device: String,
    pub host: String,
    pub threads: usize,
    pub data_root: String,
    /// A csv dataset's table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_table: Option<String>,
    /// UTC, RFC 3339.
    pub started: String,
    pub finished: String,
    pub wall_seconds: f64,
    /// The CPU and numeric libraries the run computed with (absent in runs made before
    /// agml recorded them): what explains two machines' different numbers for one cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// The CPU a run computed on and what its kernels made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// The widest vector extension the CPU reports: `AVX-512`, `AVX2`, `SSE`, or the
    /// architecture's name elsewhere.
    pub cpu_simd: String,
    /// The instruction sets the backend's kernels chose at start-up, per kernel family.
    pub kernels: BTreeMap<String, String>,
    /// Versions of the numeric libraries: `burn`, and `libtorch` on tch.
    pub libraries: BTreeMap<String, String>,
    /// The CPU's data caches, e.g. `L1d 48K, L2 1024K, L3 32768K`: gemm sizes its blocks by
    /// them, and a product longer than its block sums in another order on other caches.
    #[serde(default)]
    pub caches: String,
}

/// `failure.json` of a run that failed: the reason, kept until the run is redone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub hash: String,
    pub reason: String,
    pub at: String,
}

/// The current UTC time in RFC 3339 (seconds).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A provenance for store tests.
#[cfg(test)]
pub(crate) fn test_provenance() -> Provenance {
    Provenance {
        agml_version: "0".into(),
        git_commit: None,
        git_dirty: None,
        backend: "flex".into(),
        device: "cpu".into(),
        host: "h".into(),
        threads: 1,
        data_root: String::new(),
        data_table: None,
        started: utc_now(),
        finished: utc_now(),
        wall_seconds: 0.0,
        machine: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
