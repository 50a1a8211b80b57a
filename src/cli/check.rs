//! `agml check invariance`: the method's invariance claims, with a negative control.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::check::invariance::{InvarianceOptions, check_invariance};
use agml::model::{BackboneKind, HeadKind};
use agml::store::write_atomic;
use agml::train::Backend;

#[derive(clap::Subcommand)]
pub enum CheckCommand {
    /// Each head under permutations of feature-map positions and the whole network under
    /// circular input shifts, with a flatten head as the negative control; writes
    /// <out>/tables/invariance.{md,tex}; exit 1 if attentive grouping is not invariant.
    Invariance {
        #[arg(long, value_enum, default_value_t = BackboneKind::ConvnetSmall)]
        backbone: BackboneKind,
        /// Heads to check (default: all); the flatten control is always added.
        #[arg(long, value_enum, value_delimiter = ',')]
        head: Vec<HeadKind>,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=64))]
        groups: u8,
        #[arg(long, default_value = "paper")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: CheckCommand) -> anyhow::Result<ExitCode> {
    let CheckCommand::Invariance {
        backbone,
        head,
        groups,
        out,
        json,
    } = command;
    let options = InvarianceOptions {
        backbone,
        heads: if head.is_empty() {
            HeadKind::ALL.to_vec()
        } else {
            head
        },
        groups: usize::from(groups),
        ..Default::default()
    };
    let report = check_invariance(&options, &Backend::Flex.device()?);
    let tables = out.join("tables");
    std::fs::create_dir_all(&tables)?;
    write_atomic(&tables.join("invariance.md"), report.markdown().as_bytes())?;
    write_atomic(&tables.join("invariance.tex"), report.latex().as_bytes())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.markdown());
        println!("wrote {}/invariance.{{md,tex}}", tables.display());
    }
    for failure in &report.failures {
        eprintln!("FAILED: {failure}");
    }
    Ok(super::exit(report.failures.is_empty()))
}
