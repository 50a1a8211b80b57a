//! `agml verify`: every finished run's artifacts against their manifest checksums.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::store::{RunStore, verify_store};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (runs, artifacts, mismatches) = verify_store(&RunStore::new(&args.results))?;
    for m in &mismatches {
        println!("{m}");
    }
    println!(
        "verified {artifacts} artifacts of {runs} finished runs in {}: {} do not match",
        args.results.display(),
        mismatches.len()
    );
    Ok(super::exit(mismatches.is_empty()))
}
