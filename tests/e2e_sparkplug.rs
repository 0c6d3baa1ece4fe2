//! Sparkplug B edge nodes end to end: births before data, seq wrapping past 255 with no gap, the NDEATH
//! will delivered by the broker when a connection is killed (churn), all checked by an observer that
//! applies the Sparkplug rules. Against the embedded broker, and mosquitto when
//! FLEETSTORM_MOSQUITTO_URL is set (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::time::Duration;

use fleetstorm::engine::{run, RunOptions};
use fleetstorm::metrics::{Counter, Counters};
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::RunStatus;

fn scenario(tag: &str, broker: Option<&str>) -> Plan {
    let url = broker.map_or(String::new(), |u| format!("broker:\n  url: {u}\n"));
    let text = format!(
        "name: {tag}\nseed: 9\n{url}groups:\n  - name: lines\n    count: 4\n    profile: cnc-machine\n    interval: 20ms\n    payload: sparkplug\n    sparkplug: {{ group_id: {tag}, devices: 2 }}\nobservers:\n  - name: scada\n    qos: 0\n    topics: [\"spBv1.0/{tag}/#\"]\nphases:\n  - ramp: {{ connect_rate: 100/s }}\n  - steady: {{ duration: 3s }}\n  - churn: {{ duration: 1s, rate: 2/s }}\n  - name: after\n    steady: {{ duration: 2s }}\n"
    );
    Plan::new(
        fleetstorm::scenario::parse(&text, "spb.yaml").unwrap(),
        Shard::default(),
    )
}

/// Run `plan` on one thread, require it to complete, and return its whole-run counters.
fn completed_run(plan: &Plan) -> Counters {
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
    out.snapshot.total().unwrap().counters
}

fn check(plan: &Plan) {
    let c = completed_run(plan);
    let connects = c.get(Counter::ConnectSuccesses);
    let drops = c.get(Counter::ChurnDrops);
    assert_eq!(drops, 2, "2/s for 1 s");
    assert_eq!(connects, 4 + drops);
    // every session is born: one NBIRTH and one DBIRTH per device, before any data
    assert_eq!(c.get(Counter::SparkplugBirths), connects * 3);
    assert_eq!(c.get(Counter::SparkplugDataBeforeBirth), 0);
    // the observer saw every message sent (QoS 0 on loopback), data by alias, and no seq gap even though
    // each node sent far more than 256 messages (seq wraps 255 -> 0)
    let published = c.get(Counter::Published);
    let seen = c.get(Counter::SparkplugData) + c.get(Counter::SparkplugBirths);
    // QoS 0: the one slot of DDATA (2 devices) written just before a killed connection, or just before
    // the end, may never reach the observer; nothing else may go missing.
    assert!(
        seen <= published && published - seen <= (drops + 4) * 2,
        "published {published}, seen {seen}"
    );
    assert!(
        c.get(Counter::SparkplugData) / 4 > 256,
        "{}",
        c.get(Counter::SparkplugData)
    );
    assert_eq!(c.get(Counter::SparkplugSeqGap), 0);
    assert_eq!(c.get(Counter::SparkplugUnknownAlias), 0);
    assert_eq!(c.get(Counter::SparkplugMalformed), 0);
    assert_eq!(c.get(Counter::SparkplugBdSeqMismatch), 0);
    // the killed connections' wills (NDEATH with the session's bdSeq) were delivered by the broker
    assert!(
        c.get(Counter::SparkplugDeaths) >= drops,
        "{}",
        c.get(Counter::SparkplugDeaths)
    );
    // Sparkplug groups are not audited by JSON stamps
    assert_eq!(c.get(Counter::ExpectedDeliveries), 0);
}

#[test]
fn sparkplug_edge_nodes_against_the_embedded_broker() {
    check(&scenario(&format!("spbe{}", std::process::id()), None));
}

#[test]
fn sparkplug_edge_nodes_against_mosquitto() {
    let Ok(url) = std::env::var("FLEETSTORM_MOSQUITTO_URL") else {
        eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
        return;
    };
    check(&scenario(
        &format!("spbm{}", std::process::id()),
        Some(&url),
    ));
}

/// A primary host's NCMD `Node Control/Rebirth` makes a running node publish its births again.
#[test]
fn ncmd_rebirth_makes_the_node_rebirth() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use fleetstorm::broker::{start_embedded, EmbeddedLimits};
    use fleetstorm::mqtt::codec::{self, ConnectOptions, Incoming};
    use fleetstorm::scenario::{MqttVersion, Qos};

    let broker = start_embedded(EmbeddedLimits::default()).unwrap().v4;
    let gid = format!("rb{}", std::process::id());
    let text = format!(
        "name: {gid}\nbroker:\n  url: mqtt://{broker}\n  client_id: \"{{group}}-{{index}}\"\ngroups:\n  - {{ name: line, count: 1, profile: energy-meter, interval: 100ms, payload: sparkplug, sparkplug: {{ group_id: {gid}, devices: 1 }} }}\nphases:\n  - ramp: {{ connect_rate: 10/s }}\n  - steady: {{ duration: 6s }}\n"
    );
    let plan = Plan::new(
        fleetstorm::scenario::parse(&text, "rb.yaml").unwrap(),
        Shard::default(),
    );
    let runner = std::thread::spawn(move || {
        run(
            &plan,
            &RunOptions {
                threads: 1,
                ..RunOptions::default()
            },
        )
    });

    // A host: subscribe to the group's NBIRTHs, wait for the node's birth, ask for a rebirth, wait again.
    let mut host = TcpStream::connect(broker).unwrap();
    host.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let connect = codec::encode_connect(&ConnectOptions {
        version: MqttVersion::V311,
        client_id: format!("{gid}-host"),
        keep_alive_s: 30,
        clean_session: true,
        username: None,
        password: None,
        will: None,
        session_expiry_s: None,
    })
    .unwrap();
    host.write_all(&connect).unwrap();
    let sub = codec::encode_subscribe(
        MqttVersion::V311,
        1,
        &[(format!("spBv1.0/{gid}/NBIRTH/#"), Qos::AtMostOnce)],
    )
    .unwrap();
    host.write_all(&sub).unwrap();
    let mut buf: Vec<u8> = Vec::new();
    // The node's first birth may go out before this subscription is active: then ask after 2 s anyway.
    // What must hold: an NBIRTH arrives after the request.
    let started = Instant::now();
    let mut births = 0;
    let mut births_after_ask = 0;
    let mut asked = false;
    let deadline = started + Duration::from_secs(15);
    while births_after_ask == 0 && Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        if let Ok(n) = host.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        while let Ok(Some((packet, used))) = codec::parse(&buf, MqttVersion::V311) {
            if let Incoming::Publish { topic, .. } = packet {
                assert_eq!(topic, format!("spBv1.0/{gid}/NBIRTH/line-0").as_bytes());
                births += 1;
                if asked {
                    births_after_ask += 1;
                }
            }
            buf.drain(..used);
        }
        if !asked && (births == 1 || started.elapsed() > Duration::from_secs(2)) {
            asked = true;
            let topic = codec::encode_topic(&format!("spBv1.0/{gid}/NCMD/line-0")).unwrap();
            let mut publish = Vec::new();
            let payload = fleetstorm::telemetry::sparkplug::rebirth_request(1);
            codec::encode_publish(
                &mut publish,
                MqttVersion::V311,
                &topic,
                Qos::AtMostOnce,
                false,
                false,
                0,
                &payload,
            );
            host.write_all(&publish).unwrap();
        }
    }
    assert!(asked);
    assert_eq!(
        births_after_ask, 1,
        "no NBIRTH after the rebirth request ({births} in all)"
    );
    let out = runner.join().unwrap().unwrap();
    assert_eq!(out.outcome.status, RunStatus::Completed);
    // one connection, two births (first birth and the rebirth): NBIRTH + DBIRTH each, plus the data
    assert_eq!(
        out.snapshot
            .total()
            .unwrap()
            .counters
            .get(Counter::ConnectSuccesses),
        1
    );
}

/// Devices behind live nodes go offline (DDEATH) and come back (DBIRTH) while their nodes publish on; the
/// observer sees every death followed by a birth and never data from a dead device.
#[test]
fn sparkplug_device_outages_against_the_embedded_broker() {
    let tag = format!("spbo{}", std::process::id());
    let text = format!(
        "name: {tag}\nseed: 5\ngroups:\n  - name: lines\n    count: 3\n    profile: energy-meter\n    interval: 50ms\n    payload: sparkplug\n    sparkplug: {{ group_id: {tag}, devices: 4, device_outages: {{ rate: 1/s, duration: 300ms }} }}\nobservers:\n  - name: scada\n    qos: 0\n    topics: [\"spBv1.0/{tag}/#\"]\nphases:\n  - ramp: {{ connect_rate: 100/s }}\n  - steady: {{ duration: 4s }}\n"
    );
    let plan = Plan::new(
        fleetstorm::scenario::parse(&text, "spbo.yaml").unwrap(),
        Shard::default(),
    );
    let c = completed_run(&plan);
    let births = c.get(Counter::SparkplugBirths);
    let deaths = c.get(Counter::SparkplugDeaths);
    // 12 devices, ~4 s, an outage every ~1.3 s per device (1 s online on average, then 0.3 s off).
    let first_births = 3 * (1 + 4);
    assert!(deaths > 12, "only {deaths} deaths");
    // Every DDEATH is followed by a DBIRTH, except outages still running at the end (at most one per device);
    // the 3 NDEATHs of the clean end count as deaths too.
    let rebirths = births - first_births;
    assert!(
        rebirths + 12 + 3 >= deaths && rebirths <= deaths,
        "births {births}, deaths {deaths}"
    );
    assert_eq!(c.get(Counter::SparkplugDataBeforeBirth), 0);
    assert_eq!(c.get(Counter::SparkplugSeqGap), 0);
    assert_eq!(c.get(Counter::SparkplugUnknownAlias), 0);
    assert_eq!(c.get(Counter::SparkplugMalformed), 0);
}
