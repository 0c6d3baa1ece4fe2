//! A real broker restart (issue 11, item 1): this test starts its own mosquitto on a free loopback port,
//! kills it mid-run and starts it again on the same port. Devices, the delivery observer and the
//! Sparkplug primary host (an observer with `sparkplug_host`) must all come back; the host announces
//! itself online again so its edge nodes are born again; what the observer could not see while it was
//! down is `unobserved`, not lost, for a plain and for a shared (`$share`) observer alike. Skipped (with a message) where no mosquitto binary is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetstorm::engine::{self, RunOptions, TickSample};
use fleetstorm::metrics::Counter;
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::{Deliveries, RunStatus};

fn mosquitto_bin() -> Option<String> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(|p| (*p).to_owned())
}

/// Poll `cond` every few milliseconds until it holds or `timeout` passes; whether it held.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto this test owns (stopped by its PID when dropped).
struct Mosquitto {
    bin: String,
    conf: std::path::PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Start on a free port in 65001-65535 (above the ephemeral range), retrying on another port if
    /// the chosen one is taken.
    fn start(bin: String, dir: &std::path::Path) -> Mosquitto {
        let seed = u64::from(std::process::id())
            ^ u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
            );
        for attempt in 0..20u64 {
            let port = 65001 + ((seed.wrapping_mul(7919) + attempt * 131) % 535) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let conf = dir.join(format!("mosquitto-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     set_tcp_nodelay true\nmax_connections -1\nlog_dest stderr\nlog_type error\n"
                ),
            )
            .unwrap();
            let mut m = Mosquitto {
                bin: bin.clone(),
                conf,
                port,
                child: None,
            };
            if m.spawn() {
                return m;
            }
        }
        panic!("could not start mosquitto on a free port");
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Start the process and poll (with a deadline) until it accepts connections.
    fn spawn(&mut self) -> bool {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(5), || {
            self.alive()
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
        });
        if !up {
            self.stop();
        }
        up
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kill the process (SIGKILL, by its PID) and reap it: the port stops accepting.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn devices_observers_and_the_sparkplug_host_survive_a_mosquitto_restart() {
    let Some(bin) = mosquitto_bin() else {
        eprintln!("SKIPPED: no mosquitto binary installed");
        return;
    };
    let dir = std::env::temp_dir().join(common::unique("restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = Mosquitto::start(bin, &dir);
    let tag = common::unique("rst");
    let yaml = format!(
        r#"
name: {tag}
seed: 4
broker:
  url: "mqtt://127.0.0.1:{port}"
  protocol: 5
  client_id: "{tag}-{{group}}-{{index}}"
groups:
  - name: meters
    count: 20
    profile: energy-meter
    interval: 100ms
    qos: 1
    topic: "m/{tag}/{{client_id}}"
  - name: nodes
    count: 5
    profile: cnc-machine
    interval: 500ms
    payload: sparkplug
    sparkplug: {{ group_id: "{tag}", devices: 2, primary_host: "{tag}-host" }}
observers:
  - name: audit
    count: 1
    topics: ["m/{tag}/#"]
  - name: pool
    count: 2
    shared: true
    topics: ["m/{tag}/#"]
  - name: scada
    topics: ["spBv1.0/{tag}/#"]
    sparkplug_host: "{tag}-host"
    sparkplug_host_delay: 500ms
phases:
  - ramp: {{ connect_rate: 50/s }}
  - steady: {{ duration: 16s }}
"#,
        port = broker.port
    );
    let s = fleetstorm::scenario::parse(&yaml, "restart.yaml").expect("valid scenario");
    let plan = Plan::new(s, Shard::default());
    // The run reports each second; the test kills the broker once deliveries flow (tick 3 or later)
    // and starts it again two ticks later. Reconnect attempts that meet the dead broker back off (the
    // third waits up to 4 s), so everyone is back well before the end of the 16 s steady phase.
    let (tx, rx) = mpsc::channel::<TickSample>();
    let tx = std::sync::Mutex::new(tx);
    let opts = RunOptions {
        threads: 1,
        drain: Duration::from_secs(3),
        tick_hook: Some(Arc::new(move |t: &TickSample| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(t.clone());
            }
        })),
        ..RunOptions::default()
    };
    let runner = std::thread::spawn(move || engine::run(&plan, &opts));
    let mut killed_at = None;
    let mut restarted = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(t) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        match killed_at {
            None if t.tick >= 3 && t.counters.get(Counter::Received) > 0 => {
                broker.stop();
                killed_at = Some(t.tick);
            }
            Some(k) if !restarted && t.tick >= k + 2 => {
                assert!(broker.spawn(), "mosquitto did not come back on its port");
                restarted = true;
            }
            _ => {}
        }
    }
    let out = runner.join().unwrap().expect("the run completes");
    assert!(restarted, "the broker was killed and restarted mid-run");
    let c = out.snapshot.total().unwrap().counters;
    let meters = out.snapshot.group_total(0).unwrap().counters;
    let d = Deliveries::from_counters(&meters);
    assert_eq!(
        d.expected,
        2 * meters.get(Counter::Published),
        "two observer streams per meter message: the plain observer and the shared pool"
    );
    eprintln!(
        "mosquitto restart: outcome {:?} | device disconnects {} host-offline {} connects {} refused {} | \
         observer disconnects {} reconnects {} | expected {} received {} lost {} unobserved {} | \
         births {} deaths {} gated {} violations {}",
        out.outcome.status,
        c.disconnects(),
        c.get(Counter::SparkplugHostOffline),
        c.get(Counter::ConnectSuccesses),
        c.get(Counter::ConnectFailRefused),
        c.get(Counter::ObserverDisconnects),
        c.get(Counter::ObserverReconnects),
        d.expected,
        d.received,
        d.lost,
        d.unobserved,
        c.get(Counter::SparkplugBirths),
        c.get(Counter::SparkplugDeaths),
        c.get(Counter::SparkplugGated),
        c.get(Counter::SparkplugSeqGap)
            + c.get(Counter::SparkplugDataBeforeBirth)
            + c.get(Counter::SparkplugBdSeqMismatch)
            + c.get(Counter::SparkplugBirthBeforeOnline),
    );
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    // Every device connection ended once (the broker closed it) and came back.
    assert_eq!(
        c.get(Counter::ConnectSuccesses),
        2 * 25,
        "every device came back once"
    );
    assert!(
        c.get(Counter::ConnectFailRefused) > 0,
        "the broker was down for a while"
    );
    // Every observer session (delivery audit, the two of a shared observer, Sparkplug host) came back.
    assert_eq!(c.get(Counter::ObserverDisconnects), 4);
    assert_eq!(c.get(Counter::ObserverReconnects), 4);
    // The host went online again: every edge node was born again after the restart (NBIRTH and a
    // DBIRTH per device, once per session), and no Sparkplug rule was broken.
    assert!(
        c.get(Counter::SparkplugBirths) >= 2 * 5 * 3,
        "births {}",
        c.get(Counter::SparkplugBirths)
    );
    assert_eq!(c.get(Counter::SparkplugSeqGap), 0);
    assert_eq!(c.get(Counter::SparkplugDataBeforeBirth), 0);
    assert_eq!(c.get(Counter::SparkplugBdSeqMismatch), 0);
    assert_eq!(c.get(Counter::SparkplugBirthBeforeOnline), 0);
    // The audit: the outage is unobserved, not lost; the identity holds in every phase and group.
    assert!(d.unobserved > 0, "the observer's outage is visible");
    assert_eq!(
        d.lost, 0,
        "mosquitto lost nothing while the observer was connected"
    );
    for p in &out.snapshot.phases {
        for (g, name) in p.groups.iter().zip(&out.snapshot.group_names) {
            let dd = Deliveries::from_counters(&g.counters);
            assert_eq!(
                dd.expected,
                dd.received + dd.lost + dd.unobserved,
                "{}/{name}",
                p.name
            );
            assert_eq!(
                dd.unobserved,
                g.counters.get(Counter::Unobserved),
                "{}/{name}",
                p.name
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
