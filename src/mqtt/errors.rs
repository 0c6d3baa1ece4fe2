//! Why a connection attempt failed: below both the session and the transports, which report it.

use std::io;

use rustls::CertificateError;

use super::codec;
use super::protocol::MqttVersion;
use super::ws::UpgradeError;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("connection reset or closed during the handshake")]
    Reset,
    #[error("CONNACK refused the connection: {code:#04x} {}", codec::connack_meaning(*.version, *.code))]
    Rejected { code: u8, version: MqttVersion },
    #[error("protocol error during the handshake: {0}")]
    Protocol(String),
    /// The WebSocket upgrade (ws://) failed: the broker's HTTP reply says why.
    #[error("{0}")]
    Upgrade(UpgradeError),
    /// No local address and port to connect from: `EADDRNOTAVAIL` / `EADDRINUSE` from `bind` or
    /// `connect`. Either the ephemeral ports for this (source address, broker address) pair ran out,
    /// or a configured source address is not an address of this host.
    #[error("no local port or address to connect from: {0}")]
    NoPort(io::Error),
    /// The TLS handshake failed (the broker's certificate did not verify, an alert, a timeout).
    #[error("TLS handshake failed: {detail}; {}", .reason.advice())]
    Tls { reason: TlsFailure, detail: String },
    #[error("socket error: {0}")]
    Io(io::Error),
}

impl ConnectError {
    pub(crate) fn tls(reason: TlsFailure, e: &rustls::Error) -> ConnectError {
        ConnectError::Tls {
            reason,
            detail: e.to_string(),
        }
    }

    pub(crate) fn from_io(e: io::Error) -> ConnectError {
        match e.kind() {
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => ConnectError::NoPort(e),
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ConnectError::Reset,
            _ => ConnectError::Io(e),
        }
    }
}

/// Why a TLS handshake failed, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The broker's certificate is not signed by a trusted CA.
    UnknownIssuer,
    /// The broker's certificate has expired (or is not valid yet).
    Expired,
    /// The broker's certificate does not name the server name.
    NameMismatch,
    /// The handshake did not finish within the connect timeout.
    Timeout,
    /// The broker sent an alert (e.g. it refused our client certificate).
    Alert,
    /// Anything else (bad signature, unsupported parameters, malformed messages).
    Other,
}

impl TlsFailure {
    /// What the failure means and the key that fixes it.
    pub fn advice(self) -> &'static str {
        match self {
            TlsFailure::UnknownIssuer => "the broker's certificate is not signed by a trusted CA: set `broker.tls.ca` to the PEM file of the CA that signed it",
            TlsFailure::Expired => "the broker's certificate has expired or is not valid yet: renew it on the broker (or check this host's clock)",
            TlsFailure::NameMismatch => "the broker's certificate is not valid for the name connected to: set `broker.tls.server_name` to a name the certificate lists, or connect by that name",
            TlsFailure::Timeout => "the TLS handshake did not finish in time: is the port a TLS listener? A longer `broker.connect_timeout` helps an overloaded broker",
            TlsFailure::Alert => "the broker ended the TLS handshake with an alert: check its log (client certificate required or refused, `broker.tls.cert`/`key`, `broker.tls.versions`, `broker.tls.alpn`)",
            TlsFailure::Other => "the TLS handshake failed: check that the port is a TLS listener and `broker.tls`",
        }
    }

    pub(crate) fn of(e: &rustls::Error) -> TlsFailure {
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                _ => TlsFailure::Other,
            },
            rustls::Error::AlertReceived(_) => TlsFailure::Alert,
            _ => TlsFailure::Other,
        }
    }
}
