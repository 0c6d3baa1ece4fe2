//! The live metrics endpoint: a minimal HTTP server on the coordinator's runtime that answers every
//! request with the current exposition. Updated once a second, never from the hot path. The text is
//! written by the [`Exposition`] given at start (OpenMetrics, from `output::openmetrics`): the engine
//! serves figures, it does not format them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::{Counters, IntervalHistograms};

/// Writes the exposition: (scenario name, cumulative counters, devices connected, the latency
/// histograms of the run so far) → the response body.
pub type Exposition =
    Arc<dyn Fn(&str, &Counters, i64, &IntervalHistograms) -> String + Send + Sync>;

/// Where to serve the live metrics, and how to write them.
#[derive(Clone)]
pub struct Prometheus {
    pub addr: SocketAddr,
    pub exposition: Exposition,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    counters: Counters,
    connected: i64,
    latency: IntervalHistograms,
}

/// What the endpoint serves; the coordinator updates it once a second.
#[derive(Clone)]
pub struct LiveView {
    scenario: Arc<str>,
    exposition: Exposition,
    state: Arc<Mutex<State>>,
}

impl LiveView {
    pub fn set_counters(&self, counters: &Counters, connected: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.counters = counters.clone();
            s.connected = connected;
        }
    }

    pub fn add_latency(&self, h: &IntervalHistograms) {
        if let Ok(mut s) = self.state.lock() {
            s.latency.merge(h);
        }
    }

    fn render(&self) -> String {
        match self.state.lock() {
            Ok(s) => (self.exposition)(&self.scenario, &s.counters, s.connected, &s.latency),
            Err(_) => "# EOF\n".into(),
        }
    }
}

/// Bind `at.addr` and serve until the runtime ends.
pub async fn serve(at: &Prometheus, scenario: String) -> std::io::Result<LiveView> {
    let listener = TcpListener::bind(at.addr).await?;
    let view = LiveView {
        scenario: scenario.into(),
        exposition: at.exposition.clone(),
        state: Arc::new(Mutex::new(State::default())),
    };
    let served = view.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let body = served.render();
            tokio::spawn(async move {
                // Read the request head (whatever it asks, the answer is the exposition).
                let mut buf = [0u8; 2048];
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
                        .await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(view)
}
