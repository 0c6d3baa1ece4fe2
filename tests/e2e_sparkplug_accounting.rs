//! Sparkplug accounting against an independent witness: every Sparkplug message fleetstorm publishes
//! (births, data, device deaths and rebirths of outages, the NDEATH of a clean end) is counted as
//! published, and the observer sees what a plain subscriber on the same broker sees. Against the embedded
//! rumqttd, and mosquitto when FLEETSTORM_MOSQUITTO_URL is set (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

use fleetstorm::engine::{run, RunOptions};
use fleetstorm::metrics::{Counter, Counters};
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::RunStatus;

/// Sparkplug messages a plain subscriber received, by message type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    nbirth: u64,
    dbirth: u64,
    ndeath: u64,
    ddeath: u64,
    ndata: u64,
    ddata: u64,
}

impl Seen {
    fn total(&self) -> u64 {
        self.nbirth + self.dbirth + self.ndeath + self.ddeath + self.ndata + self.ddata
    }
}

/// Read PUBLISH packets until the broker has been quiet for `quiet` (the run is over by then), counting
/// them by the message type in the topic `spBv1.0/<group>/<TYPE>/...`.
fn witness(mut s: TcpStream, quiet: Duration) -> JoinHandle<Seen> {
    s.set_read_timeout(Some(quiet)).unwrap();
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut subscribed = false;
        while let Some((first, body)) = common::read_packet(&mut s) {
            match first >> 4 {
                9 => subscribed = true,
                3 if subscribed => {
                    let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let topic = std::str::from_utf8(&body[2..2 + n]).unwrap();
                    match topic.split('/').nth(2) {
                        Some("NBIRTH") => seen.nbirth += 1,
                        Some("DBIRTH") => seen.dbirth += 1,
                        Some("NDEATH") => seen.ndeath += 1,
                        Some("DDEATH") => seen.ddeath += 1,
                        Some("NDATA") => seen.ndata += 1,
                        Some("DDATA") => seen.ddata += 1,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        seen
    })
}

fn plan(tag: &str, url: &str) -> Plan {
    let text = format!(
        "name: {tag}\nseed: 5\nbroker:\n  url: {url}\ngroups:\n  - name: lines\n    count: 5\n    profile: energy-meter\n    interval: 50ms\n    payload: sparkplug\n    sparkplug: {{ group_id: {tag}, devices: 3, device_outages: {{ rate: 1/s, duration: 300ms }} }}\nobservers:\n  - name: scada\n    qos: 0\n    topics: [\"spBv1.0/{tag}/#\"]\nphases:\n  - ramp: {{ connect_rate: 100/s }}\n  - steady: {{ duration: 3s }}\n"
    );
    Plan::new(
        fleetstorm::scenario::parse(&text, "spb-accounting.yaml").unwrap(),
        Shard::default(),
    )
}

fn check(tag: &str, url: &str, port: u16) {
    let sub = common::subscriber(port, &format!("{tag}-witness"), &format!("spBv1.0/{tag}/#"))
        .expect("the witness subscribes");
    let seen = witness(sub, Duration::from_secs(2));
    let out = run(
        &plan(tag, url),
        &RunOptions {
            threads: 1,
            drain: Duration::from_secs(2),
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
    let c: Counters = out.snapshot.total().unwrap().counters;
    let seen = seen.join().unwrap();
    // no connection was lost, so the broker published no will: every message came from fleetstorm
    assert_eq!(c.disconnects(), 0);
    assert_eq!(
        seen.ndeath, 5,
        "one NDEATH per node at the clean end: {seen:?}"
    );
    assert!(seen.ddeath > 0, "device outages happened: {seen:?}");
    assert_eq!(
        c.get(Counter::Published),
        seen.total(),
        "published vs what a plain subscriber received: {seen:?}"
    );
    // the observer saw what the plain subscriber saw
    assert_eq!(
        c.get(Counter::SparkplugBirths),
        seen.nbirth + seen.dbirth,
        "{seen:?}"
    );
    assert_eq!(
        c.get(Counter::SparkplugDeaths),
        seen.ndeath + seen.ddeath,
        "{seen:?}"
    );
    assert_eq!(
        c.get(Counter::SparkplugData),
        seen.ndata + seen.ddata,
        "{seen:?}"
    );
}

#[test]
fn sparkplug_counts_match_an_independent_subscriber_on_rumqttd() {
    let broker =
        fleetstorm::broker::start_embedded(fleetstorm::broker::EmbeddedLimits::default()).unwrap();
    let tag = format!("spbacc{}", std::process::id());
    check(&tag, &format!("mqtt://{}", broker.v4), broker.v4.port());
}

#[test]
fn sparkplug_counts_match_an_independent_subscriber_on_mosquitto() {
    let Ok(url) = std::env::var("FLEETSTORM_MOSQUITTO_URL") else {
        eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
        return;
    };
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let tag = format!("spbaccm{}", std::process::id());
    check(&tag, &url, port);
}
