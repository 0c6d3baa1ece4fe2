//! Scenario files: raw serde types mirroring the YAML, validation into a typed [`Scenario`] with YAML
//! paths and line numbers in every error, and name templates.

pub mod model;
pub mod template;

pub use model::*;
