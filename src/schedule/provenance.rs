//! Provenance common to the runs of one `agml run`: code version, host, backend, machine.

use std::path::Path;
use std::process::Command;

use burn::tensor::Device;

use super::machine;
use crate::matrix::PlannedCell;
use crate::store::{Machine, Provenance};
use crate::train::Backend;

/// What every run of this process shares.
#[derive(Debug, Clone)]
pub struct Origin {
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub host: String,
    pub backend: Backend,
    pub device: String,
    pub machine: Machine,
}

impl Origin {
    /// Reads the git state of the source tree agml was built from, and the host name.
    pub fn detect(backend: Backend, device: &Device) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"));
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(source)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let git_commit = git(&["rev-parse", "HEAD"]);
        let git_dirty = git_commit
            .as_ref()
            .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self {
            git_commit,
            git_dirty,
            host,
            backend,
            device: format!("{device:?}"),
            machine: machine::detect(backend),
        }
    }

    /// The provenance of one run of `cell`.
    pub fn provenance(
        &self,
        cell: &PlannedCell,
        started: String,
        finished: String,
        wall_seconds: f64,
    ) -> Provenance {
        Provenance {
            agml_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: self.git_commit.clone(),
            git_dirty: self.git_dirty,
            backend: self.backend.to_string(),
            device: self.device.clone(),
            host: self.host.clone(),
            threads: rayon::current_num_threads(),
            data_root: cell.data_root.display().to_string(),
            data_table: (cell.data_table.as_ref()).map(|t| t.display().to_string()),
            started,
            finished,
            wall_seconds,
            machine: Some(self.machine.clone()),
        }
    }
}
