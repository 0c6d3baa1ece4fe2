use std::time::Duration;
use fleetstorm::scenario::*;
use fleetstorm::scenario::template::Template;
use fleetstorm::telemetry::ProfileKind;
fn main() {
    let qos = match std::env::args().nth(1).as_deref() { Some("1") => Qos::AtLeastOnce, Some("2") => Qos::ExactlyOnce, _ => Qos::AtMostOnce };
    let url = std::env::args().nth(2).map(|p| BrokerUrl { scheme: "mqtt".into(), host: "127.0.0.1".into(), port: p.parse().unwrap() });
    let s = Scenario {
        name: "smoke".into(), seed: 1,
        broker: BrokerSettings { url, protocol: MqttVersion::V311, keep_alive: Duration::from_secs(30),
            client_id: Template::parse("fs-{group}-{index}").unwrap(), clean_session: true, connect_timeout: Duration::from_secs(5),
            username: None, password: None, max_connecting: 100 },
        groups: vec![Group { name: "env".into(), count: 200, profile: ProfileKind::EnvironmentSensor, interval: Duration::from_millis(100), qos, retain: false, topic: Template::parse("t/{group}/{client_id}").unwrap() }],
        phases: vec![Phase { name: "ramp".into(), kind: PhaseKind::Ramp { connect_rate_per_s: 500.0 } }, Phase { name: "steady".into(), kind: PhaseKind::Steady { duration: Duration::from_secs(3) } }],
    };
    let plan = fleetstorm::plan::Plan::new(s, Default::default());
    let out = fleetstorm::engine::run(&plan, &Default::default()).unwrap();
    let t = out.snapshot.total().unwrap();
    for &c in fleetstorm::metrics::Counter::ALL { if t.counters.get(c) > 0 { println!("{} = {}", c.name(), t.counters.get(c)); } }
    for ((m, b), h) in &t.histograms { println!("{:?} {:?} n={} p50={} p99={} max={}", m, b, h.len(), h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()); }
    println!("{:?} {}", out.outcome, out.broker_label);
}
