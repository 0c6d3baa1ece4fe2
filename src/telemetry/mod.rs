//! Device profiles, signal models and payload encoders. Seeded and reproducible; no I/O.

mod profile;

pub use profile::ProfileKind;
