//! CLI types
