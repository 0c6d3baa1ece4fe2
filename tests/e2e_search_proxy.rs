//! The capacity search against a real broker whose capacity is known: mosquitto
//! (`FLEETSTORM_MOSQUITTO_URL`) behind a TCP proxy written here that forwards the clients' bytes to
//! the broker at most `CAP_BYTES_PER_S` (a FIFO link of that speed shared by every connection, with
//! a short burst credit), and the broker's bytes back without limit. Below the cap the proxy adds
//! almost nothing; above it its queue, and with it the corrected e2e latency, grows without bound.
//! So the true knee in msg/s is the cap divided by the bytes of one PUBLISH, which the proxy
//! measures on the very traffic of the search (it frames the MQTT stream and counts PUBLISH packets
//! and their bytes). `fleetstorm search --vary rate` must find it within 15%.
//!
//! Everything goes through the proxy, the observer too: it measures e2e over the same path, and all
//! it sends towards the broker is its CONNECT, its SUBSCRIBE and keep-alives (QoS 0, so no PUBACK
//! per message), which the test counts as overhead. The devices publish QoS 0: with QoS 1 a delayed
//! PUBACK would hold back the next publish and the step would read as the client being late.
//! The proxy reads everything the clients send at once, so the client's sockets never push back
//! either: the delay is the proxy's queue, which the corrected latency sees.
//!
//! The cap (400 kB/s: about 1,100 msg/s of ~350-byte publishes from 50 devices) is far below what
//! the client and mosquitto take on a loaded 2-core machine, so the cap decides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fleetstorm, unique, Workspace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The proxy's client-to-broker speed.
const CAP_BYTES_PER_S: f64 = 400_000.0;
/// How far back an idle link may catch up (a token bucket of `CAP × BURST` bytes): a proxy thread
/// that was not scheduled for up to this long on a busy machine does not lose capacity.
const BURST: Duration = Duration::from_millis(100);
/// The largest distance of the found capacity from the computed knee.
const TOLERANCE: f64 = 0.15;

/// What the proxy counted on the client-to-broker side.
#[derive(Default)]
struct Counts {
    bytes: AtomicU64,
    publishes: AtomicU64,
    publish_bytes: AtomicU64,
}

/// The shared link: when it is free again.
struct Link {
    free_at: Mutex<Option<Instant>>,
}

impl Link {
    /// When `n` bytes read now leave the link (FIFO over every connection).
    fn depart(&self, n: usize) -> Instant {
        let now = Instant::now();
        let mut free_at = self.free_at.lock().unwrap();
        let start = match *free_at {
            Some(t) => t.max(now - BURST),
            None => now,
        };
        let depart = start + Duration::from_secs_f64(n as f64 / CAP_BYTES_PER_S);
        *free_at = Some(depart);
        depart
    }
}

/// Frames an MQTT byte stream: fixed header, remaining length, body.
#[derive(Default)]
struct Framer {
    header: Vec<u8>,
    skip: usize,
}

impl Framer {
    /// Feed bytes; `packet(type, total length)` for every fixed header completed.
    fn feed(&mut self, mut data: &[u8], mut packet: impl FnMut(u8, usize)) {
        loop {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
            }
            if data.is_empty() {
                return;
            }
            while let Some((&b, rest)) = data.split_first() {
                self.header.push(b);
                data = rest;
                if self.header.len() >= 2 && b & 0x80 == 0 {
                    break;
                }
            }
            let complete = self.header.len() >= 2 && self.header[self.header.len() - 1] & 0x80 == 0;
            if !complete {
                assert!(self.header.len() < 5, "malformed remaining length");
                return;
            }
            let mut remaining = 0usize;
            for (i, b) in self.header[1..].iter().enumerate() {
                remaining |= usize::from(b & 0x7f) << (7 * i);
            }
            packet(self.header[0] >> 4, self.header.len() + remaining);
            self.skip = remaining;
            self.header.clear();
        }
    }
}

/// One client connection: its bytes to the broker through the link, the broker's back as they come.
async fn serve(client: TcpStream, broker: String, link: Arc<Link>, counts: Arc<Counts>) {
    let Ok(upstream) = TcpStream::connect(&broker).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let forward = tokio::spawn(async move {
        while let Some((depart, bytes)) = rx.recv().await {
            tokio::time::sleep_until(depart).await;
            if up_wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut up_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    });
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let depart = link.depart(n);
        counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
        framer.feed(&buf[..n], |kind, len| {
            if kind == 3 {
                counts.publishes.fetch_add(1, Ordering::Relaxed);
                counts
                    .publish_bytes
                    .fetch_add(len as u64, Ordering::Relaxed);
            }
        });
        if tx.send((depart, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    // The client is gone: what it left queued is dropped, so it takes no capacity from the next step.
    forward.abort();
    back.abort();
}

/// Start the proxy in front of `broker` (host:port); its address.
fn start_proxy(rt: &tokio::runtime::Runtime, broker: String, counts: Arc<Counts>) -> String {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind the proxy");
    let addr = listener.local_addr().unwrap();
    let link = Arc::new(Link {
        free_at: Mutex::new(None),
    });
    rt.spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve(client, broker.clone(), link.clone(), counts.clone()));
        }
    });
    format!("mqtt://{addr}")
}

/// The broker URL, or `None` (after saying so) when the variable is not set.
fn mosquitto_url() -> Option<String> {
    match std::env::var("FLEETSTORM_MOSQUITTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("FLEETSTORM_REQUIRE_BROKERS").is_none(),
                "FLEETSTORM_MOSQUITTO_URL not set although FLEETSTORM_REQUIRE_BROKERS is"
            );
            eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
            None
        }
    }
}

fn scenario(name: &str) -> String {
    format!(
        "\
name: {name}
seed: 5
broker:
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: meters
    count: 50
    profile: energy-meter
    interval: 1s
    qos: 0
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
observers:
  - name: audit
    count: 1
    qos: 0
phases:
  - ramp: {{ connect_rate: 500/s }}
  - steady: {{ duration: 30s }}
"
    )
}

#[test]
fn the_search_finds_the_knee_of_a_broker_behind_a_capped_link() {
    let Some(url) = mosquitto_url() else {
        return;
    };
    let broker = url
        .trim()
        .trim_start_matches("mqtt://")
        .trim_end_matches('/')
        .to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counts = Arc::new(Counts::default());
    let proxy = start_proxy(&rt, broker, counts.clone());

    let ws = Workspace::new();
    let file = ws.file("s.yaml", &scenario(&unique("search-proxy")));
    let out = ws.out();
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--broker",
        &proxy,
        "--slo",
        "e2e.p99 < 50ms",
        "--vary",
        "rate",
        "--from",
        "600",
        "--to",
        "20000",
        "--resolution",
        "10%",
        "--settle",
        "2s",
        "--window",
        "4s",
        "--max-steps",
        "12",
        "--out",
        out.to_str().unwrap(),
    ]);
    println!("{}", run.stdout);

    // The knee from what went through the proxy.
    let publishes = counts.publishes.load(Ordering::Relaxed);
    let publish_bytes = counts.publish_bytes.load(Ordering::Relaxed);
    let bytes = counts.bytes.load(Ordering::Relaxed);
    assert!(publishes > 0, "nothing was published\n{}", run.describe());
    let per_publish = publish_bytes as f64 / publishes as f64;
    let knee = CAP_BYTES_PER_S / per_publish;
    println!(
        "proxy: {publishes} PUBLISH packets, {per_publish:.1} bytes each; {:.3}% of the {bytes} bytes towards the broker were other packets; cap {CAP_BYTES_PER_S} B/s",
        100.0 * (bytes - publish_bytes) as f64 / bytes as f64
    );

    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    assert_eq!(json["answer"]["kind"], "found", "{json:#}");
    let capacity = json["capacity"].as_f64().unwrap();
    let first_failing = json["answer"]["first_failing"].as_f64().unwrap();
    println!(
        "computed knee {knee:.0} msg/s; the search found {capacity} msg/s (first failing {first_failing}): {:+.1}%",
        100.0 * (capacity - knee) / knee
    );
    assert!(
        (capacity - knee).abs() <= TOLERANCE * knee,
        "capacity {capacity} msg/s is more than {:.0}% from the knee {knee:.0} msg/s\n{}",
        TOLERANCE * 100.0,
        run.describe()
    );
    // Every step was judged on the broker's side: the load generator kept its schedule.
    for s in json["steps"].as_array().unwrap() {
        assert_eq!(s["client_limited"], false, "{s:#}");
    }
}
