//! MQTT over WebSocket (`ws://`) end to end. The broker is amqtt (a Python broker with a WebSocket
//! listener) started by each test on a free port in 65200-65299: Debian's mosquitto 2.0.11 opens its
//! `protocol websockets` listener and then exits with "Unable to start any listening sockets" on
//! this machine (see README, Transports). `.ci/run` installs amqtt and sets `FLEETSTORM_AMQTT` to its
//! executable; without it (or `amqtt` on `PATH`) the broker tests say SKIPPED and pass.
//! The refused-upgrade tests need no broker: a scripted HTTP server answers the upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::{check_healthy_run, fleetstorm, Fleet, Workspace};
use fleetstorm::metrics::Counter;

/// The amqtt executable, or `None` (after saying so).
fn amqtt_bin() -> Option<String> {
    if let Ok(b) = std::env::var("FLEETSTORM_AMQTT") {
        if !b.trim().is_empty() {
            return Some(b);
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("amqtt"))
            .find(|f| f.is_file())
    });
    if on_path.is_none() {
        // .ci/run sets FLEETSTORM_REQUIRE_BROKERS: there a missing broker is a failure, not a skip
        assert!(
            std::env::var_os("FLEETSTORM_REQUIRE_BROKERS").is_none(),
            "no amqtt although FLEETSTORM_REQUIRE_BROKERS is set: set FLEETSTORM_AMQTT"
        );
        eprintln!("SKIPPED: no amqtt (set FLEETSTORM_AMQTT; .ci/run installs it)");
    }
    on_path.map(|p| p.to_string_lossy().into_owned())
}

/// An amqtt broker with one WebSocket listener; killed (by its PID) when dropped.
struct Amqtt {
    child: Child,
    port: u16,
    /// `wss` when the listener speaks TLS, else `ws`.
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

/// A CA made here and a server certificate it signed for 127.0.0.1: `(CA PEM, cert PEM, key PEM)`.
fn server_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fleetstorm wss test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.distinguished_name.push(DnType::CommonName, "broker");
    let key = KeyPair::generate().unwrap();
    let cert = leaf
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

impl Amqtt {
    /// Start amqtt with a WebSocket listener; with `tls` (cert PEM, key PEM) a wss:// one.
    fn start(bin: &str, tls: Option<(&str, &str)>) -> Amqtt {
        let dir = tempfile::tempdir().unwrap();
        let ssl = match tls {
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("server.crt"), dir.path().join("server.key"));
                std::fs::write(&c, cert).unwrap();
                std::fs::write(&k, key).unwrap();
                format!(
                    "    ssl: true\n    certfile: {}\n    keyfile: {}\n",
                    c.display(),
                    k.display()
                )
            }
            None => String::new(),
        };
        // Tests of this binary start brokers in parallel: each its own sequence of ports.
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let first = (std::process::id() % 100) as u16 + NEXT.fetch_add(41, Ordering::Relaxed);
        for k in 0..100u16 {
            let port = 65200 + (first + k * 37) % 100;
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue; // taken
            }
            let conf = dir.path().join(format!("amqtt-{port}.yaml"));
            std::fs::write(
                &conf,
                format!(
                    "listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:{port}\n{ssl}\
                     plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join(format!("amqtt-{port}.log"))).unwrap();
            let mut child = Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start amqtt");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // could not bind: another port
                }
                // listening on it itself (not another test's broker that took the port first)
                if common::listening_ports(child.id()).contains(&port) {
                    return Amqtt {
                        child,
                        port,
                        scheme: if tls.is_some() { "wss" } else { "ws" },
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("amqtt did not start on any port in 65200-65299");
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/mqtt", self.scheme, self.port)
    }
}

impl Drop for Amqtt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fleet` with an observer subscribed to its topics (and `broker_extra`, YAML lines under `broker:`),
/// run against `url`.
fn run_observed(ws: &Workspace, fleet: &Fleet, url: &str, broker_extra: &str) -> common::Finished {
    let yaml = fleet
        .yaml()
        .replace("phases:", "observers:\n  - name: audit\nphases:")
        .replacen("broker:\n", &format!("broker:\n{broker_extra}"), 1);
    let scenario = ws.file("scenario.yaml", &yaml);
    let out = ws.out();
    let duration = format!("{}s", fleet.steady_s);
    fleetstorm(&[
        "run",
        scenario.to_str().unwrap(),
        "--duration",
        &duration,
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
        "--broker",
        url,
    ])
}

/// A WebSocket fleet against a real broker (over TLS when `tls`, verified against a CA made here):
/// healthy, and the observer on the same broker counts the devices' messages exactly (none lost,
/// none twice).
fn ws_fleet(qos: u8, tls: bool) {
    let Some(bin) = amqtt_bin() else {
        return;
    };
    let ws = Workspace::new();
    let (broker, broker_extra) = if tls {
        let (ca, cert, key) = server_certificate();
        let ca_file = ws.file("ca.pem", &ca);
        let extra = format!("  tls:\n    ca: {}\n", ca_file.display());
        (Amqtt::start(&bin, Some((&cert, &key))), extra)
    } else {
        (Amqtt::start(&bin, None), String::new())
    };
    let mut fleet = Fleet::new(&format!("{}-q{qos}", broker.scheme), qos);
    fleet.devices = 20;
    let run = run_observed(&ws, &fleet, &broker.url(), &broker_extra);
    check_healthy_run(&fleet, &run, &ws.out());
    let r = common::load_report(&ws.out());
    assert_eq!(r.broker, broker.url(), "the report names the URL");
    let url = &r.scenario["broker"]["url"];
    assert_eq!(
        (&url["scheme"], &url["path"]),
        (&broker.scheme.into(), &"/mqtt".into()),
        "the resolved scenario keeps scheme and path: {url}"
    );
    if tls {
        let c = &r.totals.totals.counters;
        assert_eq!(
            c.get(Counter::TlsHandshakesFull) + c.get(Counter::TlsHandshakesResumed),
            c.get(Counter::ConnectSuccesses),
            "every wss:// device connect is one TLS handshake"
        );
    }
    let c = &r.totals.totals.counters;
    let published = c.get(Counter::Published);
    assert!(published > 0);
    assert_eq!(
        c.get(Counter::ExpectedDeliveries),
        published,
        "one observer: one delivery per publish"
    );
    assert_eq!(
        c.get(Counter::Received),
        published,
        "every message seen once\n{}",
        run.describe()
    );
    assert_eq!(c.get(Counter::Unobserved), 0);
    assert_eq!(c.get(Counter::Duplicates), 0);
    assert_eq!(c.get(Counter::ObserverDisconnects), 0);
}

#[test]
fn ws_fleet_qos1_is_delivered_exactly_once_through_the_broker() {
    ws_fleet(1, false);
}

#[test]
fn wss_fleet_qos1_over_verified_tls_is_delivered_exactly_once_through_the_broker() {
    ws_fleet(1, true);
}

#[test]
fn ws_fleet_qos0_is_delivered_exactly_once_through_the_broker() {
    ws_fleet(0, false);
}

/// A server that answers every upgrade request with `reply` and closes.
fn scripted_http(reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(reply.as_bytes());
        }
    });
    port
}

fn refused_run(reply: &'static str, observer: bool) -> common::Finished {
    let port = scripted_http(reply);
    let mut fleet = Fleet::new("ws-refused", 1);
    fleet.devices = 5;
    fleet.connect_timeout_s = 2;
    let ws = Workspace::new();
    let url = format!("ws://127.0.0.1:{port}/mqtt");
    if observer {
        run_observed(&ws, &fleet, &url, "")
    } else {
        common::run_fleet(&ws, &fleet, &["--broker", &url])
    }
}

#[test]
fn a_refused_upgrade_ends_with_exit_3_naming_the_http_status() {
    let run = refused_run("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true);
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    for needle in [
        "refused the WebSocket upgrade: HTTP 404 Not Found",
        "check the path in the broker URL",
    ] {
        assert!(run.stderr.contains(needle), "{needle}\n{}", run.describe());
    }
}

#[test]
fn an_upgrade_with_a_wrong_accept_key_is_refused_with_the_reason() {
    // 101 without a Sec-WebSocket-Accept for the key sent (the subprotocol and header checks are
    // unit tests in src/mqtt/ws.rs).
    let run = refused_run(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        true,
    );
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("Sec-WebSocket-Accept does not match"),
        "{}",
        run.describe()
    );
}

#[test]
fn devices_refused_the_upgrade_count_as_protocol_failures_with_websocket_advice() {
    let run = refused_run("HTTP/1.1 400 Bad Request\r\n\r\n", false);
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("protocol errors") && run.stderr.contains("ws://"),
        "{}",
        run.describe()
    );
}
