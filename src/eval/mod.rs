//! Evaluation: embeddings -> exact k-nearest neighbours -> retrieval metrics.

pub mod retrieval;

pub use retrieval::{Metrics, retrieval_metrics};
