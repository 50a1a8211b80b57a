//! agml: reproducible deep metric learning experiments (attentive grouping, Xu et al.).
//!
//! The modules follow the data flow: matrix -> schedule -> train (data, model, loss) -> eval
//! -> store -> report.

pub mod allocator;
pub mod check;
pub mod data;
pub mod error;
pub mod eval;
pub mod loss;
pub mod matrix;
pub mod model;
pub mod products;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod store;
pub mod train;
