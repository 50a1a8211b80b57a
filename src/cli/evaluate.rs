//! `agml evaluate`: retrieval and clustering metrics of embeddings stored as .npy.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::eval::evaluate::evaluate_files;

#[derive(clap::Args)]
pub struct Args {
    /// float32 [n, d]
    #[arg(long)]
    embeddings: PathBuf,
    /// integers [n]
    #[arg(long)]
    labels: PathBuf,
    /// float32 [m, d]: rank against this gallery instead of leave-one-out
    #[arg(long, requires = "gallery_labels")]
    gallery: Option<PathBuf>,
    #[arg(long, requires = "gallery")]
    gallery_labels: Option<PathBuf>,
    /// The K of Recall@K (each at least 1).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8",
          value_parser = super::at_least_one)]
    k: Vec<usize>,
    /// One JSON object of metric -> fraction.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let gallery = args.gallery.as_deref().zip(args.gallery_labels.as_deref());
    let metrics = evaluate_files(&args.embeddings, &args.labels, gallery, &args.k)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        for (name, value) in &metrics {
            println!("{name:<12} {value:.4}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
