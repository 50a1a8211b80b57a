//! Models: a backbone and a grouping head make an embedder.

pub mod backbones;
pub mod batchnorm;
pub mod embedder;
pub mod heads;
pub mod layers;
pub mod ops;

pub use backbones::{Backbone, BackboneConfig, BackboneKind};
pub use embedder::{Embedder, EmbedderConfig};
pub use heads::{GroupShape, Head, HeadKind, HeadOutput};
