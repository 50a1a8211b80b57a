//! `agml evaluate`: retrieval and clustering metrics of embeddings stored as .npy.

use std::path::PathBuf;
use std::process::ExitCode;

use agml::eval::evaluate::{Requested, evaluate_files};

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
    /// Only these metrics (recall@k, map@r, r_precision, nmi, f1); all when not given.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// One JSON object of metric -> fraction.
    #[arg(long)]
    json: bool,
    /// The seconds of each metric family (retrieval, clustering) on stderr.
    #[arg(long)]
    timings: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let gallery = args.gallery.as_deref().zip(args.gallery_labels.as_deref());
    let requested = Requested::new(&args.metrics)?;
    let evaluation = evaluate_files(&args.embeddings, &args.labels, gallery, &args.k, &requested)?;
    if args.timings {
        for (family, seconds) in &evaluation.timings {
            eprintln!("{family:<12} {seconds:.3} s");
        }
    }
    let metrics = evaluation.metrics;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        for (name, value) in &metrics {
            println!("{name:<12} {value:.4}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
