//! The live metrics endpoint: a minimal HTTP server on the coordinator's runtime that answers every
//! request with the current OpenMetrics exposition. Updated once a second, never from the hot path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::EngineError;
use crate::metrics::{Counters, IntervalHistograms};
use crate::report::openmetrics;

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
            Ok(s) => openmetrics::render(&self.scenario, &s.counters, s.connected, &s.latency),
            Err(_) => "# EOF\n".into(),
        }
    }
}

/// Bind `addr` and serve until the runtime ends.
pub async fn serve(addr: SocketAddr, scenario: String) -> Result<LiveView, EngineError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| EngineError::Prometheus(addr, e))?;
    let view = LiveView {
        scenario: scenario.into(),
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
