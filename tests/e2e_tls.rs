//! End to end over TLS against real mosquitto processes this test starts itself (ports 65100-65199,
//! a temporary config, certificates from a CA made here with rcgen): verified TLS with the loss audit,
//! mutual TLS with a fleet certificate (`require_certificate` + `use_identity_as_username`), a broker
//! certificate from an unknown CA, an expired one and one for another name (each exit 3 naming the
//! reason and the key that fixes it), resumption on reconnect (resumed vs full handshakes), per-device
//! certificate templates naming missing files (exit 2 before anything connects), and secrets kept out
//! of every output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{check_healthy_run, fleetstorm, latency_count, load_report, unique, Fleet, Workspace};
use fleetstorm::metrics::{Counter, Metric};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A CA made for one test.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf certificate `(cert PEM, key PEM)` for `names` (DNS names or IP addresses), CN `cn`,
    /// valid from `not_before` to `not_after` (relative to now).
    fn leaf(&self, names: &[&str], cn: &str, valid: (i64, i64)) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for n in names {
            params
                .subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*n).try_into().unwrap()),
                });
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(valid.0);
        params.not_after = now + time::Duration::days(valid.1);
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A mosquitto process with a TLS listener, stopped (by its PID) on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start mosquitto with a TLS listener serving `server` (cert, key) and trusting `ca` for client
/// certificates; `mtls` requires a client certificate whose CN becomes the user name.
fn mosquitto(ws: &Workspace, ca: &Ca, server: &(String, String), mtls: bool) -> Mosquitto {
    let extra = if mtls {
        "require_certificate true\nuse_identity_as_username true\n"
    } else {
        ""
    };
    mosquitto_with(ws, ca, server, extra)
}

/// [`mosquitto`] with `extra` lines added to its TLS listener's configuration.
fn mosquitto_with(ws: &Workspace, ca: &Ca, server: &(String, String), extra: &str) -> Mosquitto {
    let dir = ws.path();
    let ca_file = write(dir, "broker-ca.pem", &ca.pem);
    let cert = write(dir, "server.pem", &server.0);
    let key = write(dir, "server.key", &server.1);
    let log = dir.join("mosquitto.log");
    let seed = common::port_seed();
    for attempt in 0..20u16 {
        let port = 65100 + (seed.wrapping_mul(7).wrapping_add(attempt * 13)) % 100;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            continue;
        }
        let mut conf = format!(
            "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_connections -1\n\
             cafile {}\ncertfile {}\nkeyfile {}\n",
            ca_file.display(),
            cert.display(),
            key.display()
        );
        conf.push_str(extra);
        let conf_path = write(dir, "mosquitto.conf", &conf);
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mosquitto");
        let mut m = Mosquitto {
            child,
            port,
            log: log.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if m.child.try_wait().unwrap().is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // The port answers: ours only if our mosquitto still runs (one that could not bind
                // exits at once, and the answer came from another test's broker).
                std::thread::sleep(Duration::from_millis(100));
                if m.child.try_wait().unwrap().is_none() {
                    return m;
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "mosquitto did not come up on {port}: {}",
            std::fs::read_to_string(&m.log).unwrap_or_default()
        );
        let _ = m.child.kill();
        let _ = m.child.wait();
        m.port = 0;
    }
    panic!("could not start mosquitto on a port in 65100-65199");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `fleet`'s scenario with `tls` (YAML lines, indented under `broker:`) added.
fn tls_yaml(fleet: &Fleet, tls: &str) -> String {
    fleet
        .yaml()
        .replacen("broker:\n", &format!("broker:\n  tls:\n{tls}"), 1)
}

fn run(ws: &Workspace, yaml: &str, extra: &[&str]) -> common::Finished {
    let scenario = ws.file("scenario.yaml", yaml);
    let out = ws.out();
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fleetstorm(&args)
}

fn server_cert(ca: &Ca) -> (String, String) {
    ca.leaf(&["127.0.0.1", "localhost"], "broker", (-1, 30))
}

#[test]
fn verified_tls_end_to_end_conserves_messages_and_records_the_handshake() {
    let ws = Workspace::new();
    let ca = Ca::new("fleetstorm test CA");
    let broker = mosquitto(&ws, &ca, &server_cert(&ca), false);
    let ca_file = write(ws.path(), "ca.pem", &ca.pem);
    let fleet = Fleet::new("tls-verified", 1);
    let yaml = tls_yaml(&fleet, &format!("    ca: {}\n", ca_file.display()));
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let steady = format!("{}s", fleet.steady_s);
    let finished = run(&ws, &yaml, &["--broker", &url, "--duration", &steady]);
    check_healthy_run(&fleet, &finished, &ws.out());
    let r = load_report(&ws.out());
    let c = &r.totals.totals.counters;
    let handshakes = c.get(Counter::TlsHandshakesFull) + c.get(Counter::TlsHandshakesResumed);
    assert_eq!(
        handshakes,
        c.get(Counter::ConnectSuccesses),
        "every connect is one TLS handshake\n{}",
        finished.describe()
    );
    assert_eq!(
        latency_count(&r.totals.totals, Metric::TlsHandshake),
        handshakes,
        "one tls_handshake sample per handshake"
    );
    assert!(r.broker.starts_with("mqtts://"), "{}", r.broker);
}

#[test]
fn mutual_tls_with_a_fleet_certificate_is_accepted_and_without_one_refused() {
    let ws = Workspace::new();
    let ca = Ca::new("fleetstorm mTLS CA");
    let broker = mosquitto(&ws, &ca, &server_cert(&ca), true);
    let ca_file = write(ws.path(), "ca.pem", &ca.pem);
    let (cert, key) = ca.leaf(&[], "fleet-device", (-1, 30));
    let cert_file = write(ws.path(), "fleet.crt", &cert);
    let key_file = write(ws.path(), "fleet.key", &key);
    let url = format!("mqtts://127.0.0.1:{}", broker.port);

    let fleet = Fleet::new("mtls-fleet", 1);
    let yaml = tls_yaml(
        &fleet,
        &format!(
            "    ca: {}\n    cert: {}\n    key: {}\n",
            ca_file.display(),
            cert_file.display(),
            key_file.display()
        ),
    );
    let steady = format!("{}s", fleet.steady_s);
    let finished = run(&ws, &yaml, &["--broker", &url, "--duration", &steady]);
    check_healthy_run(&fleet, &finished, &ws.out());

    // The same broker without a client certificate: the handshake fails, nothing connects (exit 3).
    let ws2 = Workspace::new();
    let mut fleet = Fleet::new("mtls-none", 0);
    fleet.steady_s = 1;
    fleet.connect_timeout_s = 2;
    let yaml = tls_yaml(&fleet, &format!("    ca: {}\n", ca_file.display()));
    let finished = run(&ws2, &yaml, &["--broker", &url, "--duration", "1s"]);
    assert_eq!(finished.code(), Some(3), "{}", finished.describe());
    assert_eq!(
        load_report(&ws2.out())
            .totals
            .totals
            .counters
            .get(Counter::ConnectSuccesses),
        0
    );
}

/// A run against a broker whose certificate does not verify: exit 3, the reason, the key to fix it,
/// and the counter of that reason.
fn refused_certificate(
    tag: &str,
    server: impl Fn(&Ca) -> (String, String),
    expect: (Counter, &str, &str),
) {
    let ws = Workspace::new();
    let ca = Ca::new(&format!("{tag} CA"));
    let broker = mosquitto(&ws, &ca, &server(&ca), false);
    let trusted = if expect.0 == Counter::ConnectFailTlsUnknownIssuer {
        Ca::new("some other CA").pem
    } else {
        ca.pem.clone()
    };
    let ca_file = write(ws.path(), "ca.pem", &trusted);
    let mut fleet = Fleet::new(tag, 0);
    fleet.devices = 5;
    fleet.steady_s = 1;
    fleet.connect_timeout_s = 2;
    let yaml = tls_yaml(&fleet, &format!("    ca: {}\n", ca_file.display()));
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let finished = run(&ws, &yaml, &["--broker", &url, "--duration", "1s"]);
    let ctx = finished.describe();
    assert_eq!(finished.code(), Some(3), "{ctx}");
    let (counter, reason, key) = expect;
    assert!(
        finished.stderr.contains(reason),
        "should name `{reason}`\n{ctx}"
    );
    assert!(finished.stderr.contains(key), "should name `{key}`\n{ctx}");
    assert!(!finished.stderr.contains("is the broker running"), "{ctx}");
    let r = load_report(&ws.out());
    let c = &r.totals.totals.counters;
    assert!(c.get(counter) > 0, "{} should count\n{ctx}", counter.name());
    assert_eq!(
        c.get(counter),
        c.get(Counter::ConnectAttempts) - c.get(Counter::ConnectAbandoned)
    );
}

#[test]
fn a_broker_certificate_from_an_unknown_ca_ends_with_exit_3_naming_broker_tls_ca() {
    refused_certificate(
        "tls-unknown-ca",
        server_cert,
        (
            Counter::ConnectFailTlsUnknownIssuer,
            "not signed by a trusted CA",
            "broker.tls.ca",
        ),
    );
}

#[test]
fn an_expired_broker_certificate_ends_with_exit_3() {
    refused_certificate(
        "tls-expired",
        |ca| ca.leaf(&["127.0.0.1"], "broker", (-30, -1)),
        (Counter::ConnectFailTlsExpired, "expired", "broker"),
    );
}

#[test]
fn a_broker_certificate_for_another_name_ends_with_exit_3_naming_server_name() {
    refused_certificate(
        "tls-name",
        |ca| ca.leaf(&["other.example"], "broker", (-1, 30)),
        (
            Counter::ConnectFailTlsNameMismatch,
            "not valid for the name",
            "broker.tls.server_name",
        ),
    );
}

/// A storm drops half the fleet and the devices reconnect: `(full, resumed, connects, drops)`. The
/// session cache is per worker thread (one thread here), so with resumption on every handshake after
/// the first ticket arrived may resume.
fn storm_handshakes(resumption: bool) -> (u64, u64, u64, u64) {
    let ws = Workspace::new();
    let ca = Ca::new("resumption CA");
    let broker = mosquitto(&ws, &ca, &server_cert(&ca), false);
    let ca_file = write(ws.path(), "ca.pem", &ca.pem);
    let name = unique("tls-resume");
    let yaml = format!(
        "name: {name}
broker:
  url: mqtts://127.0.0.1:{port}
  client_id: \"{name}-{{index}}\"
  tls:
    ca: {ca}
    resumption: {resumption}
groups:
  - {{ name: dev, count: 200, profile: energy-meter, interval: 1s, qos: 0, topic: \"fleetstorm-test/{name}/{{client_id}}\" }}
phases:
  - ramp: {{ connect_rate: 400/s }}
  - steady: {{ duration: 1s }}
  - storm: {{ duration: 4s, fraction: 1.0 }}
",
        port = broker.port,
        ca = ca_file.display(),
    );
    let finished = run(&ws, &yaml, &["--threads", "1"]);
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    let c = load_report(&ws.out()).totals.totals.counters;
    (
        c.get(Counter::TlsHandshakesFull),
        c.get(Counter::TlsHandshakesResumed),
        c.get(Counter::ConnectSuccesses),
        c.get(Counter::StormDrops),
    )
}

#[test]
fn reconnects_resume_tls_sessions_unless_resumption_is_off() {
    let (full, resumed, connects, drops) = storm_handshakes(true);
    assert!(drops > 0, "the storm should drop connections");
    assert_eq!(full + resumed, connects, "one handshake per connect");
    assert!(connects >= 200 + drops, "every dropped device reconnected");
    assert!(full >= 1, "the first handshake is full");
    // The whole fleet of one thread reconnects at once: every reconnect finds a ticket (rustls's own
    // cache holds 8 per server, which a storm drains at once).
    assert!(
        resumed >= drops,
        "every reconnect resumes ({resumed} resumed, {drops} drops)"
    );
    let (full, resumed, connects, drops) = storm_handshakes(false);
    assert!(drops > 0, "the storm should drop connections");
    assert_eq!(resumed, 0, "resumption off: no handshake resumes");
    assert_eq!(full, connects, "resumption off: every handshake is full");
}

#[test]
fn a_per_device_certificate_template_naming_missing_files_is_exit_2_before_connecting() {
    let ws = Workspace::new();
    let ca = Ca::new("template CA");
    let fleet = Fleet::new("tls-template", 0);
    let dir = ws.path().join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    // Files for the first device only.
    let first = format!("{}-dev-0", fleet.name);
    let (cert, key) = ca.leaf(&[], &first, (-1, 30));
    write(&dir, &format!("{first}.crt"), &cert);
    write(&dir, &format!("{first}.key"), &key);
    let yaml = tls_yaml(
        &fleet,
        &format!(
            "    cert: {d}/{{client_id}}.crt\n    key: {d}/{{client_id}}.key\n",
            d = dir.display()
        ),
    );
    // Port 1 on loopback: nothing listens; exit 2 comes before any connect.
    let finished = run(&ws, &yaml, &["--broker", "mqtts://127.0.0.1:1"]);
    let ctx = finished.describe();
    assert_eq!(finished.code(), Some(2), "{ctx}");
    assert!(finished.stderr.contains("broker.tls.cert"), "{ctx}");
    assert!(
        finished
            .stderr
            .contains(&format!("{}-dev-1.crt", fleet.name)),
        "{ctx}"
    );
    let line = yaml.lines().position(|l| l.contains("cert:")).unwrap() + 1;
    assert!(
        finished.stderr.contains(&format!(":{line}")),
        "should name line {line}\n{ctx}"
    );
    assert!(!ws.out().join("report.json").exists(), "nothing ran");
}

#[test]
fn private_keys_and_passwords_never_reach_any_output() {
    let ws = Workspace::new();
    let ca = Ca::new("secrets CA");
    let broker = mosquitto(&ws, &ca, &server_cert(&ca), true);
    let ca_file = write(ws.path(), "ca.pem", &ca.pem);
    let (cert, key) = ca.leaf(&[], "secret-device", (-1, 30));
    let cert_file = write(ws.path(), "fleet.crt", &cert);
    let key_file = write(ws.path(), "fleet.key", &key);
    let password = "pw-7f3a9c-never-shown";
    let fleet = Fleet::new("tls-secrets", 1);
    let yaml = tls_yaml(
        &fleet,
        &format!(
            "    ca: {}\n    cert: {}\n    key: {}\n",
            ca_file.display(),
            cert_file.display(),
            key_file.display()
        ),
    )
    .replacen(
        "broker:\n",
        &format!("broker:\n  username: u\n  password: \"{password}\"\n"),
        1,
    );
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let finished = run(
        &ws,
        &yaml,
        &[
            "--broker",
            &url,
            "--duration",
            "1s",
            "--threshold",
            "tls_handshake.p99 < 30s",
        ],
    );
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        ws.out().join("junit.xml").is_file(),
        "a gate writes junit.xml"
    );
    assert!(
        finished.stdout.contains("tls_handshake") || finished.stderr.contains("tls_handshake"),
        "the gate is reported\n{}",
        finished.describe()
    );
    // Every line of the key's base64 body, the password.
    let secrets: Vec<String> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .chain(std::iter::once(password.to_owned()))
        .collect();
    let mut texts = vec![(
        "console".to_owned(),
        format!("{}{}", finished.stdout, finished.stderr),
    )];
    let mut stack = vec![ws.out()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(t) = std::fs::read(&p) {
            texts.push((
                p.display().to_string(),
                String::from_utf8_lossy(&t).into_owned(),
            ));
        }
    }
    assert!(texts.len() > 3, "the report files should be there");
    for (name, text) in &texts {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name} contains a secret");
        }
    }
}

/// `issue:` against a broker that maps the certificate CN to the user name and lets each user write
/// only to the topic with its own name (mosquitto `use_identity_as_username` and an ACL pattern): with
/// `subject: CN={client_id}` every device has its own identity and every publish reaches the observer;
/// with one CN for all, the broker drops them all (so the first result is the certificates' doing).
fn minted_fleet(subject: &str) -> (Fleet, common::Finished, Workspace) {
    let ws = Workspace::new();
    let ca = Ca::new("fleetstorm issuing CA");
    let acl = write(
        ws.path(),
        "acl",
        "pattern read fleetstorm-test/#\npattern write fleetstorm-test/+/%u\n",
    );
    let extra = format!(
        "require_certificate true\nuse_identity_as_username true\nacl_file {}\n",
        acl.display()
    );
    let broker = mosquitto_with(&ws, &ca, &server_cert(&ca), &extra);
    let ca_file = write(ws.path(), "ca.pem", &ca.pem);
    let ca_key = write(ws.path(), "ca.key", &ca.key.serialize_pem());
    let mut fleet = Fleet::new("minted", 1);
    fleet.devices = 8;
    let yaml = tls_yaml(
        &fleet,
        &format!(
            "    ca: {ca}\n    issue:\n      ca_cert: {ca}\n      ca_key: {key}\n      subject: \"{subject}\"\n      valid: 1h\n",
            ca = ca_file.display(),
            key = ca_key.display()
        ),
    )
    .replace("phases:", "observers:\n  - name: audit\nphases:");
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let steady = format!("{}s", fleet.steady_s);
    let finished = run(&ws, &yaml, &["--broker", &url, "--duration", &steady]);
    (fleet, finished, ws)
}

#[test]
fn minted_certificates_give_each_device_its_own_identity_at_the_broker() {
    let (fleet, finished, ws) = minted_fleet("CN={client_id},O=fleetstorm");
    check_healthy_run(&fleet, &finished, &ws.out());
    let c = load_report(&ws.out()).totals.totals.counters;
    let published = c.get(Counter::Published);
    assert!(published > 0);
    assert_eq!(
        c.get(Counter::Received),
        published,
        "each device may write only to its own topic: all arrive\n{}",
        finished.describe()
    );
    assert_eq!(
        c.get(Counter::TlsHandshakesFull) + c.get(Counter::TlsHandshakesResumed),
        c.get(Counter::ConnectSuccesses)
    );

    let (_, finished, ws) = minted_fleet("CN=the-same-for-all");
    let c = load_report(&ws.out()).totals.totals.counters;
    assert!(c.get(Counter::Published) > 0, "{}", finished.describe());
    assert_eq!(
        c.get(Counter::Received),
        0,
        "one identity for all: the ACL drops every publish\n{}",
        finished.describe()
    );
}

#[test]
fn the_embedded_broker_serves_zero_setup_mutual_tls_with_minted_certificates() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("zero-setup-mtls", 1);
    fleet.devices = 10;
    let yaml = fleet
        .yaml()
        .replacen("broker:\n", "broker:\n  tls:\n    issue: {}\n", 1)
        .replace("phases:", "observers:\n  - name: audit\nphases:");
    let steady = format!("{}s", fleet.steady_s);
    let finished = run(&ws, &yaml, &["--duration", &steady]);
    check_healthy_run(&fleet, &finished, &ws.out());
    let r = load_report(&ws.out());
    assert!(
        r.broker
            .starts_with("embedded rumqttd behind TLS (mqtts://"),
        "{}",
        r.broker
    );
    let c = &r.totals.totals.counters;
    assert_eq!(c.get(Counter::Received), c.get(Counter::Published));
    assert_eq!(
        c.get(Counter::TlsHandshakesFull) + c.get(Counter::TlsHandshakesResumed),
        c.get(Counter::ConnectSuccesses)
    );
    assert!(
        r.series.iter().any(|p| p.tls_handshake_p99_us.is_some()),
        "the per-second series carries the handshake latency (HTML chart, live view)"
    );
    // the generated CA's files are gone with the run
    let ca = r.scenario["broker"]["tls"]["ca"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!std::path::Path::new(&ca).exists(), "{ca} left behind");
}
