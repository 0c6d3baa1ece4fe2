//! The TLS session store of one worker thread: enough TLS 1.3 tickets for a reconnect storm.
//!
//! rustls's `ClientSessionMemoryCache` keeps at most 8 TLS 1.3 tickets per server, and a ticket is used
//! once. Thousands of devices of one thread reconnecting together (a storm, churn) would drain it after
//! eight handshakes and make every other reconnect a full handshake, so a storm could not be measured
//! "with resumption". This store keeps up to [`TICKETS_PER_SERVER`] tickets per server name (brokers
//! send one or two per handshake, so about one per device of the thread), oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// Tickets kept per server name and worker thread (a few hundred bytes each).
pub const TICKETS_PER_SERVER: usize = 16_384;

/// Single-use values, at most `cap`: the oldest goes when a new one would not fit, the newest is
/// taken first.
#[derive(Debug)]
struct Stack<T> {
    items: VecDeque<T>,
}

impl<T> Default for Stack<T> {
    fn default() -> Self {
        Stack {
            items: VecDeque::new(),
        }
    }
}

impl<T> Stack<T> {
    fn push(&mut self, value: T, cap: usize) {
        while self.items.len() >= cap.max(1) {
            self.items.pop_front();
        }
        self.items.push_back(value);
    }

    fn take(&mut self) -> Option<T> {
        self.items.pop_back()
    }
}

#[derive(Debug, Default)]
struct Server {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: Stack<Tls13ClientSessionValue>,
}

/// A session store for many connections to few servers (one worker thread's devices).
#[derive(Debug)]
pub struct TicketPool {
    cap: usize,
    servers: Mutex<HashMap<ServerName<'static>, Server>>,
}

impl TicketPool {
    /// A store keeping at most `cap` TLS 1.3 tickets per server name.
    pub fn new(cap: usize) -> TicketPool {
        TicketPool {
            cap: cap.max(1),
            servers: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ServerName<'static>, Server>) -> T) -> T {
        // One thread uses it; a poisoned lock (a panic elsewhere) still holds valid tickets.
        let mut guard = match self.servers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard)
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with(|m| m.entry(name).or_default().kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|m| m.get(name).and_then(|s| s.kx_hint))
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|m| m.entry(name).or_default().tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|m| m.get(name).and_then(|s| s.tls12.clone()))
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(|m| {
            if let Some(s) = m.get_mut(name) {
                s.tls12 = None;
            }
        });
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let cap = self.cap;
        self.with(|m| m.entry(name).or_default().tls13.push(value, cap));
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest ticket first: it is the least likely to have expired.
        self.with(|m| m.get_mut(name).and_then(|s| s.tls13.take()))
    }
}

#[cfg(test)]
mod tests {
    use super::Stack;

    #[test]
    fn a_storm_finds_a_ticket_for_every_device_that_left_one() {
        // 10,000 devices each left one ticket: 10,000 reconnects at once all find one (rustls's own
        // cache would have kept 8).
        let mut s = Stack::default();
        for d in 0..10_000u32 {
            s.push(d, super::TICKETS_PER_SERVER);
        }
        let taken = std::iter::from_fn(|| s.take()).count();
        assert_eq!(taken, 10_000);
        assert_eq!(s.take(), None, "each ticket is used once");
    }

    #[test]
    fn the_oldest_go_first_and_the_newest_are_taken_first() {
        let mut s = Stack::default();
        for t in 1..=5u32 {
            s.push(t, 3);
        }
        assert_eq!(s.items.len(), 3, "capped");
        assert_eq!(s.take(), Some(5));
        assert_eq!(s.take(), Some(4));
        assert_eq!(s.take(), Some(3));
        assert_eq!(s.take(), None, "1 and 2 were dropped");
    }
}
