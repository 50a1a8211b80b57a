//! Evaluation: embeddings -> exact k-nearest neighbours -> retrieval and clustering metrics.

pub mod cluster;
pub mod evaluate;
pub mod interpretability;
pub mod kmeans;
pub mod knn;
pub mod npy;
pub mod per_group;
pub mod retrieval;

pub use cluster::clustering_metrics;
pub use kmeans::kmeans;
pub use knn::Vectors;
pub use retrieval::{Metrics, query_gallery_metrics, retrieval_metrics};
