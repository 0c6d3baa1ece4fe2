//! Sparkplug B primary host STATE end to end: edge nodes with `primary_host` publish no birth and no data
//! until the host's STATE says online (the slots meanwhile count as `sparkplug_gated`), and when the host
//! goes offline they publish NDEATH, disconnect, reconnect and wait; when it comes back they are born again.
//! The host is the scenario's own observer (`sparkplug_host`), which counts any birth it receives before it
//! went online. Against the embedded broker, and mosquitto when FLEETSTORM_MOSQUITTO_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleetstorm::broker::{start_embedded, EmbeddedLimits};
use fleetstorm::engine::{run, EngineOutput, RunOptions};
use fleetstorm::metrics::{Counter, Counters};
use fleetstorm::mqtt::codec::{self, ConnectOptions, Incoming};
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::RunStatus;
use fleetstorm::scenario::{MqttVersion, Qos};

fn mosquitto_url() -> Option<String> {
    match std::env::var("FLEETSTORM_MOSQUITTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
            None
        }
    }
}

/// A scenario of 4 edge nodes (2 devices each) gated by primary host `h{tag}`, which the observer plays,
/// going online `delay` after it subscribed.
fn gated_plan(tag: &str, broker: Option<&str>, delay: &str, steady: &str) -> Plan {
    let url = broker.map_or(String::new(), |u| format!("broker:\n  url: {u}\n"));
    let text = format!(
        "name: {tag}\nseed: 5\n{url}groups:\n  - name: lines{tag}\n    count: 4\n    profile: cnc-machine\n    interval: 20ms\n    payload: sparkplug\n    sparkplug: {{ group_id: {tag}, devices: 2, primary_host: h{tag} }}\nobservers:\n  - name: scada\n    qos: 0\n    topics: [\"spBv1.0/{tag}/#\"]\n    sparkplug_host: h{tag}\n    sparkplug_host_delay: {delay}\nphases:\n  - ramp: {{ connect_rate: 100/s }}\n  - steady: {{ duration: {steady} }}\n"
    );
    Plan::new(
        fleetstorm::scenario::parse(&text, "state.yaml").unwrap(),
        Shard::default(),
    )
}

fn run_plan(plan: &Plan) -> EngineOutput {
    let out = run(
        plan,
        &RunOptions {
            threads: 1,
            drain: Duration::from_secs(1),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    out
}

/// The Sparkplug rules held: no gaps, no data before birth, no stale will, nothing unreadable, and the
/// host saw no birth before it went online.
fn check_clean(c: &Counters) {
    eprintln!(
        "connects {} published {} births {} data {} deaths {} gated {} host_offline {} birth_before_online {}",
        c.get(Counter::ConnectSuccesses),
        c.get(Counter::Published),
        c.get(Counter::SparkplugBirths),
        c.get(Counter::SparkplugData),
        c.get(Counter::SparkplugDeaths),
        c.get(Counter::SparkplugGated),
        c.get(Counter::SparkplugHostOffline),
        c.get(Counter::SparkplugBirthBeforeOnline),
    );
    assert_eq!(c.get(Counter::SparkplugBirthBeforeOnline), 0);
    assert_eq!(c.get(Counter::SparkplugSeqGap), 0);
    assert_eq!(c.get(Counter::SparkplugDataBeforeBirth), 0);
    assert_eq!(c.get(Counter::SparkplugBdSeqMismatch), 0);
    assert_eq!(c.get(Counter::SparkplugUnknownAlias), 0);
    assert_eq!(c.get(Counter::SparkplugMalformed), 0);
    assert_eq!(c.get(Counter::ExpectedDeliveries), 0);
}

/// The host goes online 3 s after subscribing: the nodes, connected since the ramp, wait (gated slots),
/// then every node is born once and its data flows.
fn births_wait_for_the_host(tag: &str, broker: Option<&str>) {
    let out = run_plan(&gated_plan(tag, broker, "3s", "5s"));
    let c = out.snapshot.total().unwrap().counters;
    check_clean(&c);
    let connects = c.get(Counter::ConnectSuccesses);
    assert_eq!(connects, 4);
    assert_eq!(c.get(Counter::SparkplugHostOffline), 0);
    // slots due while the host was not online were not sent, and counted
    assert!(c.get(Counter::SparkplugGated) > 0, "{c:?}");
    // after online, every session is born once (NBIRTH + 2 DBIRTH), then data flows
    assert_eq!(c.get(Counter::SparkplugBirths), connects * 3);
    assert!(c.get(Counter::SparkplugData) > 0);
    // gated slots were not published: what the observer saw is at most what went out
    let seen = c.get(Counter::SparkplugBirths) + c.get(Counter::SparkplugData);
    assert!(seen <= c.get(Counter::Published), "{c:?}");
}

/// The host never comes online within the run: no birth, no data, only gated slots.
fn nothing_without_the_host(tag: &str, broker: Option<&str>) {
    let out = run_plan(&gated_plan(tag, broker, "1h", "2s"));
    let c = out.snapshot.total().unwrap().counters;
    check_clean(&c);
    assert_eq!(c.get(Counter::ConnectSuccesses), 4);
    assert_eq!(c.get(Counter::SparkplugBirths), 0);
    assert_eq!(c.get(Counter::SparkplugData), 0);
    assert_eq!(c.get(Counter::Published), 0);
    assert!(c.get(Counter::SparkplugGated) > 0, "{c:?}");
}

#[test]
fn births_wait_for_the_primary_host_embedded() {
    births_wait_for_the_host(&format!("ste{}", std::process::id()), None);
}

#[test]
fn births_wait_for_the_primary_host_mosquitto() {
    if let Some(url) = mosquitto_url() {
        births_wait_for_the_host(&format!("stm{}", std::process::id()), Some(&url));
    }
}

#[test]
fn no_births_while_the_primary_host_stays_offline_embedded() {
    nothing_without_the_host(&format!("sne{}", std::process::id()), None);
}

#[test]
fn no_births_while_the_primary_host_stays_offline_mosquitto() {
    if let Some(url) = mosquitto_url() {
        nothing_without_the_host(&format!("snm{}", std::process::id()), Some(&url));
    }
}

/// A plain MQTT client for the test's side of the broker.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    fn connect(addr: SocketAddr, client_id: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let connect = codec::encode_connect(&ConnectOptions {
            version: MqttVersion::V311,
            client_id: client_id.into(),
            keep_alive_s: 60,
            clean_session: true,
            username: None,
            password: None,
            will: None,
            session_expiry_s: None,
        })
        .unwrap();
        stream.write_all(&connect).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Subscribe and wait for the SUBACK.
    fn subscribe(&mut self, filter: &str) {
        let sub =
            codec::encode_subscribe(MqttVersion::V311, 1, &[(filter.into(), Qos::AtMostOnce)])
                .unwrap();
        self.stream.write_all(&sub).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut acked = false;
        while !acked {
            assert!(Instant::now() < deadline, "no SUBACK");
            self.poll(|p| acked |= matches!(p, Incoming::SubAck { .. }));
        }
    }

    /// Publish a retained STATE message at QoS 1.
    fn state(&mut self, host: &str, payload: &[u8]) {
        let topic = codec::encode_topic(&format!("spBv1.0/STATE/{host}")).unwrap();
        let mut out = Vec::new();
        codec::encode_publish(
            &mut out,
            MqttVersion::V311,
            &topic,
            Qos::AtLeastOnce,
            true,
            false,
            7,
            payload,
        );
        self.stream.write_all(&out).unwrap();
    }

    /// Read what arrives within the read timeout and hand each packet to `on`.
    fn poll(&mut self, mut on: impl FnMut(Incoming<'_>)) {
        let mut chunk = [0u8; 8192];
        if let Ok(n) = self.stream.read(&mut chunk) {
            assert!(n > 0, "the broker closed the test client's connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        while let Ok(Some((packet, used))) = codec::parse(&self.buf, MqttVersion::V311) {
            on(packet);
            self.buf.drain(..used);
        }
    }

    /// Wait until an N-message of `kind` (NBIRTH, NDEATH) has come from every node in `nodes`; returns
    /// how many NBIRTHs arrived meanwhile.
    fn wait_for_all(&mut self, kind: &str, nodes: &[String]) -> usize {
        let mut seen = HashSet::new();
        let mut births = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < nodes.len() {
            assert!(
                Instant::now() < deadline,
                "{kind} seen from {seen:?} of {nodes:?}"
            );
            self.poll(|p| {
                if let Incoming::Publish { topic, .. } = p {
                    let topic = String::from_utf8_lossy(topic);
                    let levels: Vec<&str> = topic.split('/').collect();
                    if levels.len() == 4 {
                        births += usize::from(levels[2] == "NBIRTH");
                        if levels[2] == kind {
                            seen.insert(levels[3].to_owned());
                        }
                    }
                }
            });
        }
        births
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The host goes offline mid-run (a newer STATE offline from another client, as a host's will would be):
/// every born node publishes NDEATH and disconnects, reconnects and stays unborn while the host is
/// offline; STATE online again brings a new birth from every node.
fn host_offline_and_back(tag: &str, broker: SocketAddr) {
    let host = format!("h{tag}");
    let text = format!(
        "name: {tag}\nbroker:\n  url: mqtt://{broker}\n  client_id: \"{{group}}-{{index}}\"\ngroups:\n  - {{ name: line, count: 2, profile: energy-meter, interval: 50ms, payload: sparkplug, sparkplug: {{ group_id: {tag}, devices: 2, primary_host: {host} }} }}\nobservers:\n  - {{ name: scada, qos: 0, topics: [\"spBv1.0/{tag}/#\"], sparkplug_host: {host} }}\nphases:\n  - ramp: {{ connect_rate: 10/s }}\n  - steady: {{ duration: 12s }}\n"
    );
    let plan = Plan::new(
        fleetstorm::scenario::parse(&text, "offline.yaml").unwrap(),
        Shard::default(),
    );
    let nodes: Vec<String> = (0..2).map(|i| format!("line-{i}")).collect();
    // Listen to node births and deaths before the run starts.
    let mut client = RawClient::connect(broker, &format!("{tag}-test"));
    client.subscribe(&format!("spBv1.0/{tag}/+/+"));
    let runner = std::thread::spawn(move || run_plan(&plan));

    client.wait_for_all("NBIRTH", &nodes);
    client.state(
        &host,
        format!(r#"{{"online":false,"timestamp":{}}}"#, now_ms()).as_bytes(),
    );
    let births_before_death = client.wait_for_all("NDEATH", &nodes);
    assert_eq!(
        births_before_death, 0,
        "a node was born after the host went offline"
    );
    // The nodes reconnect and find the retained STATE offline: they must not be born while it holds.
    let offline_births = {
        let mut births = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            client.poll(|p| {
                if let Incoming::Publish { topic, .. } = p {
                    births += usize::from(topic.windows(8).any(|w| w == b"/NBIRTH/"));
                }
            });
        }
        births
    };
    assert_eq!(offline_births, 0, "births while the host was offline");
    client.state(
        &host,
        format!(r#"{{"online":true,"timestamp":{}}}"#, now_ms()).as_bytes(),
    );
    client.wait_for_all("NBIRTH", &nodes);

    let out = runner.join().unwrap();
    // leave no retained STATE behind on a shared broker
    client.state(&host, b"");
    let c = out.snapshot.total().unwrap().counters;
    check_clean(&c);
    assert_eq!(c.get(Counter::SparkplugHostOffline), 2, "{c:?}");
    let connects = c.get(Counter::ConnectSuccesses);
    assert_eq!(
        connects, 4,
        "each node: first session, and the one after the host came back"
    );
    // each session born once: the first at once, the second only after STATE online again
    assert_eq!(c.get(Counter::SparkplugBirths), connects * 3);
    // the NDEATHs the nodes published on the host going offline (and at the end)
    assert!(c.get(Counter::SparkplugDeaths) >= 2, "{c:?}");
    assert!(c.get(Counter::SparkplugData) > 0);
}

#[test]
fn nodes_die_when_the_primary_host_goes_offline_and_rebirth_when_it_returns_embedded() {
    let broker = start_embedded(EmbeddedLimits::default()).unwrap().v4;
    host_offline_and_back(&format!("sof{}", std::process::id()), broker);
}

#[test]
fn nodes_die_when_the_primary_host_goes_offline_and_rebirth_when_it_returns_mosquitto() {
    let Some(url) = mosquitto_url() else {
        return;
    };
    let addr = url
        .trim()
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://")
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    host_offline_and_back(&format!("som{}", std::process::id()), addr);
}
