//! `agml plan MATRIX`: each selected cell with its state.

use std::process::ExitCode;

use agml::schedule::{missing_inputs, plan};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    selected: super::Selected,
    /// One JSON array of {hash, status, cell}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (matrix, filter, store) = args.selected.load()?;
    let entries = plan(&matrix, &filter, &store);
    if args.json {
        let array: Vec<_> = entries.iter().map(|e| e.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&array)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(description) = &matrix.description {
        println!("{}: {}", matrix.name, description.trim());
    }
    for entry in &entries {
        println!(
            "{:<8} {}  {}",
            entry.state.label(),
            &entry.cell.hash[..12],
            entry.cell.values
        );
    }
    println!(
        "{}",
        super::counts_line(&matrix, entries.iter().map(|e| &e.state))
    );
    let cells: Vec<_> = entries.iter().map(|e| e.cell).collect();
    for line in missing_inputs(&cells) {
        println!("missing: {line}");
    }
    Ok(ExitCode::SUCCESS)
}
