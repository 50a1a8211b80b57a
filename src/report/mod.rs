//! Reports: tables computed from stored artifacts only (never a forward pass, never training).

pub mod runs;
pub mod table;

pub use runs::{RunRow, collect_runs};
pub use table::{SummaryTable, write_summary_tables};
