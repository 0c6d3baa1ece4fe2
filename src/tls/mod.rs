//! Certificate material, not the wire: PEM loading with errors a person can act on, key/certificate
//! matching, per-device certificates minted by fleetstorm ([`mint::Minter`]), and the CA and server
//! certificate the embedded broker's TLS front generates at start ([`mint::LocalCa`]).
//!
//! Everything here hands out rustls-pki-types DER values; `mqtt/` builds rustls configurations from them
//! and is the only module that speaks TLS to a broker.

pub mod der;
mod identity;
pub mod mint;
pub mod pem;

pub use identity::{provider, Identity};
pub use mint::{CertificateAuthority, LocalCa, MintError, Minter};
pub use pem::{FileRole, MissingFile, PemError, TemplateFilesError};
