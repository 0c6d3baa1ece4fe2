//! fleetstorm: a load tester and simulator for fleets of industrial MQTT devices.
//!
//! Data flows `scenario` (YAML → validated [`scenario::Scenario`]) → `plan` (what will happen, when) →
//! `engine` (device tasks over `mqtt` sessions, measured by `metrics`) → `report` (the model, built once
//! from a merged snapshot) → `gate` (verdicts) → `output` (the writers). Imports go one way, down the
//! layer order in README's Architecture section (checked by `tests/layers.rs`).

pub mod app;
mod app_common;
mod app_docs;
mod app_gates;
mod app_preview;
mod app_search;
mod app_search_args;
pub mod broker;
pub mod cli;
pub mod engine;
pub mod error;
pub mod gate;
pub mod metrics;
pub mod mqtt;
pub mod output;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod search;
pub mod telemetry;
pub mod threshold;
pub mod tls;
pub mod ui;
