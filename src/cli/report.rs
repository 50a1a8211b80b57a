//! `agml report MATRIX`: tables, the runs index and figures from stored artifacts only.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::report::write_report;
use agml::store::RunStore;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    matrix: super::MatrixArg,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(long, default_value = "paper")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let matrix = args.matrix.load()?;
    let report = write_report(&matrix, &RunStore::new(&args.results), &args.out)?;
    print!("{}", report.main.to_markdown());
    for path in report.written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
