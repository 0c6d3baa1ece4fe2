//! TLS cost, next to plain TCP in the same run (issue 10, "Cost"):
//!
//! - d. full handshakes: 10k devices connecting as fast as `max_connecting: 500` lets them (as b.), over
//!   `mqtt://`, `mqtts://` and `mqtts://` with a fleet client certificate against a listener with
//!   `require_certificate true`; resumption off, so every TLS handshake is full. Handshakes per second,
//!   client CPU per handshake (from `/proc` over the connect window), `tls_handshake` p50/p99.
//! - e. reconnect storm: 10k connected devices all drop at once (`storm: { fraction: 1.0 }`) and
//!   reconnect after 0.5-1 s of backoff; plain, then TLS with `broker.tls.resumption` on and off:
//!   resumed vs full handshakes, connect and `tls_handshake` p99 of the storm phase, CPU per reconnect.
//! - c. over TLS (CPU per message at QoS 0 and 1) is `cpu_per_message` with [`Wire::Tls`].
//!
//! [`Comparison`] gathers the figures and puts them in the summary as a table, plain | TLS | mTLS.

use std::fmt::Write as _;

use fleetstorm::metrics::{Basis, Counter, Metric};
use fleetstorm::report::{MetricLatency, Report, RunStatus};

use super::{
    fmt_us, interpolate, phase, run_fleetstorm_over, scenario_yaml, Bench, CpuFigures, Run, Sample,
};

const DEVICES: u64 = 10_000;
/// The first reconnect after a drop waits 0.5-1 s (`BACKOFF_BASE_US` with jitter, attempt 0).
const STORM_BACKOFF_MIN_US: u64 = 500_000;
const STORM_BACKOFF_MAX_US: u64 = 1_000_000;
/// The target: full handshakes per second one client core can do.
const TARGET_PER_CPU_S: f64 = 2_000.0;

/// How the bench's mosquitto listens and the fleet connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Plain,
    Tls,
    /// TLS with one client certificate for the whole fleet (`broker.tls.cert` / `key`), against a
    /// listener with `require_certificate true`.
    Mtls,
}

impl Wire {
    const ALL: [Wire; 3] = [Wire::Plain, Wire::Tls, Wire::Mtls];

    pub(super) fn label(self) -> &'static str {
        match self {
            Wire::Plain => "plain",
            Wire::Tls => "TLS",
            Wire::Mtls => "mTLS",
        }
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            Wire::Plain => "plain",
            Wire::Tls => "tls",
            Wire::Mtls => "mtls",
        }
    }

    fn index(self) -> usize {
        match self {
            Wire::Plain => 0,
            Wire::Tls => 1,
            Wire::Mtls => 2,
        }
    }
}

/// A connect burst (d.).
#[derive(Debug, Clone, Copy)]
struct ConnectFigures {
    successes: u64,
    full: u64,
    resumed: u64,
    /// Connects per second, bounds from the connect latency (as b.).
    rate_lo: f64,
    rate_hi: f64,
    client_cpu_us: Option<f64>,
    broker_cpu_us: Option<f64>,
    window_us: u64,
    connect_p50_us: u64,
    connect_p99_us: u64,
    /// `tls_handshake` uncorrected (TCP connected → TLS established).
    tls_p50_us: Option<u64>,
    tls_p99_us: Option<u64>,
}

/// A reconnect storm (e.).
#[derive(Debug, Clone, Copy)]
struct StormFigures {
    reconnects: u64,
    full: u64,
    resumed: u64,
    /// Reconnects per second (a lower bound: the reconnects are due over 0.5 s, and the last one
    /// completes at most `connect max` after its slot).
    rate_lo: f64,
    connect_p99_us: u64,
    tls_p99_us: Option<u64>,
    client_cpu_us: Option<f64>,
    broker_cpu_us: Option<f64>,
}

/// The figures of the TLS sections and their plain counterparts, for the summary table.
#[derive(Debug, Default)]
pub(super) struct Comparison {
    idle_kb: [Option<f64>; 3],
    connect: [Option<ConnectFigures>; 3],
    /// Plain, TLS with resumption, TLS without.
    storm: [Option<StormFigures>; 3],
    /// By QoS 0, 1 and wire.
    cpu: [[Option<CpuFigures>; 3]; 2],
}

impl Comparison {
    pub(super) fn idle_kb(&mut self, wire: Wire, kb: f64) {
        self.idle_kb[wire.index()] = Some(kb);
    }

    pub(super) fn cpu_per_msg(&mut self, qos: u8, wire: Wire, f: CpuFigures) {
        if let Some(by_wire) = self.cpu.get_mut(usize::from(qos)) {
            by_wire[wire.index()] = Some(f);
        }
    }

    /// The table rows: one per figure, the value in three columns.
    pub(super) fn push_rows(&self, rows: &mut Vec<(String, String)>) {
        let dash = || "-".to_owned();
        let mut row = |key: &str, cells: [String; 3]| {
            let mut v = String::new();
            for c in cells {
                let _ = write!(v, "{c:<22}");
            }
            rows.push((format!("tls cost | {key}"), v.trim_end().to_owned()));
        };
        let by_wire =
            |f: &dyn Fn(Wire) -> Option<String>| Wire::ALL.map(|w| f(w).unwrap_or_else(dash));
        row("", ["plain", "TLS", "mTLS (fleet cert)"].map(str::to_owned));
        row(
            "idle client RSS per device",
            by_wire(&|w| self.idle_kb[w.index()].map(|kb| format!("{kb:.2} KB"))),
        );
        let connect = |w: Wire| self.connect[w.index()];
        row(
            "10k burst: connects/s (TLS: all full)",
            by_wire(&|w| connect(w).map(|c| format!("{:.0}-{:.0}/s", c.rate_lo, c.rate_hi))),
        );
        row(
            "10k burst: per client CPU-s (target >= 2,000 TLS)",
            by_wire(&|w| {
                let c = connect(w)?;
                let cpu_s = c.client_cpu_us? / 1e6;
                Some(format!("{:.0}", c.successes as f64 / cpu_s.max(1e-9)))
            }),
        );
        row(
            "10k burst: client / mosquitto CPU per connect",
            by_wire(&|w| {
                let c = connect(w)?;
                let n = c.successes.max(1) as f64;
                Some(format!(
                    "{:.0} / {:.0} µs",
                    c.client_cpu_us? / n,
                    c.broker_cpu_us.unwrap_or(f64::NAN) / n
                ))
            }),
        );
        row(
            "10k burst: full / resumed handshakes",
            by_wire(&|w| {
                let c = connect(w)?;
                (w != Wire::Plain).then(|| format!("{} / {}", c.full, c.resumed))
            }),
        );
        row(
            "10k burst: connect p50 / p99 (corrected)",
            by_wire(&|w| {
                connect(w).map(|c| {
                    format!(
                        "{} / {}",
                        fmt_us(c.connect_p50_us),
                        fmt_us(c.connect_p99_us)
                    )
                })
            }),
        );
        row(
            "10k burst: tls_handshake p50 / p99",
            by_wire(&|w| {
                let c = connect(w)?;
                Some(format!(
                    "{} / {}",
                    fmt_us(c.tls_p50_us?),
                    fmt_us(c.tls_p99_us?)
                ))
            }),
        );
        row(
            "",
            ["plain", "TLS resumption on", "TLS resumption off"].map(str::to_owned),
        );
        let storm = |f: &dyn Fn(&StormFigures) -> Option<String>| {
            self.storm
                .map(|s| s.as_ref().and_then(f).unwrap_or_else(dash))
        };
        row(
            "10k storm: reconnects/s (at least)",
            storm(&|s| Some(format!("{:.0}/s", s.rate_lo))),
        );
        row(
            "10k storm: resumed / full handshakes",
            storm(&|s| (s.full + s.resumed > 0).then(|| format!("{} / {}", s.resumed, s.full))),
        );
        row(
            "10k storm: connect p99 (corrected)",
            storm(&|s| Some(fmt_us(s.connect_p99_us))),
        );
        row(
            "10k storm: tls_handshake p99",
            storm(&|s| s.tls_p99_us.map(fmt_us)),
        );
        row(
            "10k storm: client / mosquitto CPU per reconnect",
            storm(&|s| {
                let n = s.reconnects.max(1) as f64;
                Some(format!(
                    "{:.0} / {:.0} µs",
                    s.client_cpu_us? / n,
                    s.broker_cpu_us.unwrap_or(f64::NAN) / n
                ))
            }),
        );
        row("", ["plain", "TLS", "mTLS"].map(str::to_owned));
        for (qos, by_wire_cpu) in self.cpu.iter().enumerate() {
            let f = |w: Wire| by_wire_cpu[w.index()];
            row(
                &format!("QoS {qos}: client CPU user / user+sys per msg"),
                by_wire(&|w| {
                    f(w).map(|c| format!("{:.2} / {:.2} µs", c.user_us_per_msg, c.total_us_per_msg))
                }),
            );
            row(
                &format!("QoS {qos}: msg/s reached, mosquitto CPU per msg"),
                by_wire(&|w| {
                    f(w).map(|c| {
                        format!(
                            "{:.0}/s, {:.2} µs",
                            c.rate,
                            c.broker_us_per_msg.unwrap_or(f64::NAN)
                        )
                    })
                }),
            );
        }
    }
}

fn cpu_us(bench: &Bench) -> impl Fn(&Sample) -> f64 + '_ {
    |s: &Sample| (s.utime_ticks + s.stime_ticks) as f64 * 1e6 / bench.clk_tck
}

/// CPU time of a sampled process between two instants (µs).
fn cpu_between(bench: &Bench, samples: &[Sample], from_us: u64, to_us: u64) -> Option<f64> {
    let f = cpu_us(bench);
    Some(interpolate(samples, to_us, &f)? - interpolate(samples, from_us, &f)?)
}

/// `(p50, p99)` of a metric in `latency` for `basis`.
fn percentiles(
    latency: &std::collections::BTreeMap<Metric, MetricLatency>,
    metric: Metric,
    basis: Basis,
) -> Option<(u64, u64, u64)> {
    let l = latency.get(&metric)?.get(basis);
    Some((l.p50_us, l.p99_us, l.max_us))
}

// ---- d. full handshakes ----

/// d.: plain, TLS and mTLS connect bursts of 10k devices.
pub(super) fn handshakes(bench: &Bench, cmp: &mut Comparison) {
    println!();
    println!(
        "== d. full handshakes ({DEVICES} devices, connect_rate 1000000/s, max_connecting 500, \
         TLS 1.3 with resumption off; plain, TLS, mTLS with a fleet certificate) =="
    );
    for wire in Wire::ALL {
        match connect_burst(bench, wire) {
            Ok(f) => cmp.connect[wire.index()] = Some(f),
            Err(e) => println!("  {}: failed: {e}", wire.label()),
        }
    }
}

fn connect_burst(bench: &Bench, wire: Wire) -> Result<ConnectFigures, String> {
    let name = format!("handshake-{}", wire.tag());
    let yaml = scenario_yaml(&name, DEVICES, "1h", 0, "1000000/s", 500, "3s");
    let run = run_fleetstorm_over(bench, &name, &yaml, wire, "    resumption: false\n")?;
    let report = &run.report;
    let ramp = phase(report, "ramp")?;
    let totals = &report.totals.totals;
    let c = &totals.counters;
    let successes = c.get(Counter::ConnectSuccesses);
    let failures = c.connect_failures();
    let full = c.get(Counter::TlsHandshakesFull);
    let resumed = c.get(Counter::TlsHandshakesResumed);
    let (c50, c99, cmax) = percentiles(&totals.latency, Metric::Connect, Basis::Corrected)
        .ok_or("no connect latency in the report")?;
    let tls_un = percentiles(&totals.latency, Metric::TlsHandshake, Basis::Uncorrected);
    let tls_co = percentiles(&totals.latency, Metric::TlsHandshake, Basis::Corrected);
    // As b.: every connect is due inside the ramp, so the last CONNACK arrives between max(corrected)
    // and ramp length + max(corrected) after the start.
    let ramp_us = ramp.end_us - ramp.start_us;
    let (lo_us, hi_us) = (cmax.max(1), cmax + ramp_us);
    let start = report.started_at_us;
    let client_cpu_us = cpu_between(bench, &run.client, start, start + hi_us);
    let broker_cpu_us = cpu_between(bench, &run.broker, start, start + hi_us);
    let f = ConnectFigures {
        successes,
        full,
        resumed,
        rate_lo: successes as f64 / (hi_us as f64 / 1e6),
        rate_hi: successes as f64 / (lo_us as f64 / 1e6),
        client_cpu_us,
        broker_cpu_us,
        window_us: hi_us,
        connect_p50_us: c50,
        connect_p99_us: c99,
        tls_p50_us: tls_un.map(|t| t.0),
        tls_p99_us: tls_un.map(|t| t.1),
    };
    println!(
        "  {:<5} {successes} connected, {failures} failed{}; all connected {:.3}-{:.3} s after the start → \
         {:.0}-{:.0} connects/s; connect corrected p50 {} p99 {} max {}",
        wire.label(),
        if wire == Wire::Plain {
            String::new()
        } else {
            format!(" ({full} full, {resumed} resumed handshakes)")
        },
        lo_us as f64 / 1e6,
        hi_us as f64 / 1e6,
        f.rate_lo,
        f.rate_hi,
        fmt_us(c50),
        fmt_us(c99),
        fmt_us(cmax),
    );
    if let (Some(un), Some(co)) = (tls_un, tls_co) {
        println!(
            "        tls_handshake (TCP connected → TLS established) p50 {} p99 {} max {}; \
             corrected (from the due slot) p50 {} p99 {}",
            fmt_us(un.0),
            fmt_us(un.1),
            fmt_us(un.2),
            fmt_us(co.0),
            fmt_us(co.1)
        );
    }
    print_cpu(&f, wire, &run);
    Ok(f)
}

fn print_cpu(f: &ConnectFigures, wire: Wire, run: &Run) {
    let n = f.successes.max(1) as f64;
    let window_s = f.window_us as f64 / 1e6;
    if let Some(cpu) = f.client_cpu_us {
        let per_cpu_s = n / (cpu / 1e6).max(1e-9);
        let target = if wire == Wire::Plain {
            String::new()
        } else {
            format!(
                " (target >= {TARGET_PER_CPU_S:.0} full handshakes per client core: {})",
                if per_cpu_s >= TARGET_PER_CPU_S {
                    "met"
                } else {
                    "not met"
                }
            )
        };
        println!(
            "        client CPU over the {window_s:.2} s window: {:.0} ms = {:.0} µs per connect, \
             {per_cpu_s:.0} connects per client CPU-second{target}",
            cpu / 1000.0,
            cpu / n,
        );
    }
    if let Some(b) = f.broker_cpu_us {
        println!(
            "        mosquitto CPU over the window: {:.0} ms = {:.0} µs per connect ({:.0} % of its one core)",
            b / 1000.0,
            b / n,
            100.0 * b / 1e6 / window_s.max(1e-9)
        );
    }
    let outcome = &run.report.outcome;
    if outcome.status != RunStatus::Completed {
        println!(
            "        outcome: {:?}: {}",
            outcome.status,
            outcome.message.lines().next().unwrap_or("")
        );
    }
}

// ---- e. reconnect storm ----

/// e.: a storm of 10k reconnects, plain, then TLS with resumption on and off.
pub(super) fn storm(bench: &Bench, cmp: &mut Comparison) {
    println!();
    println!(
        "== e. reconnect storm ({DEVICES} devices: ramp 2000/s, steady 5 s, then \
         storm {{ duration: 10s, fraction: 1.0 }}: all drop at once and reconnect 0.5-1 s later) =="
    );
    let cases = [
        (Wire::Plain, "plain", ""),
        (Wire::Tls, "TLS, resumption on", "    resumption: true\n"),
        (Wire::Tls, "TLS, resumption off", "    resumption: false\n"),
    ];
    for (i, (wire, label, extra)) in cases.into_iter().enumerate() {
        let tag = ["plain", "tls-resume", "tls-full"][i];
        match storm_run(bench, wire, tag, label, extra) {
            Ok(f) => cmp.storm[i] = Some(f),
            Err(e) => println!("  {label}: failed: {e}"),
        }
    }
}

fn storm_run(
    bench: &Bench,
    wire: Wire,
    tag: &str,
    label: &str,
    tls_extra: &str,
) -> Result<StormFigures, String> {
    let name = format!("storm-{tag}");
    let mut yaml = scenario_yaml(&name, DEVICES, "1h", 0, "2000/s", 500, "5s");
    yaml.push_str("  - name: storm\n    storm: { duration: 10s, fraction: 1.0 }\n");
    let run = run_fleetstorm_over(bench, &name, &yaml, wire, tls_extra)?;
    let report: &Report = &run.report;
    let ramp = phase(report, "ramp")?;
    let storm = phase(report, "storm")?;
    let rc = &ramp.totals.counters;
    let c = &storm.totals.counters;
    let drops = c.get(Counter::StormDrops);
    let reconnects = c.get(Counter::ConnectSuccesses);
    let failures = c.connect_failures();
    let full = c.get(Counter::TlsHandshakesFull);
    let resumed = c.get(Counter::TlsHandshakesResumed);
    let (c50, c99, cmax) = percentiles(&storm.totals.latency, Metric::Connect, Basis::Corrected)
        .ok_or("no connect latency in the storm phase")?;
    let tls = percentiles(
        &storm.totals.latency,
        Metric::TlsHandshake,
        Basis::Uncorrected,
    );
    // Reconnects are due 0.5-1 s after the drop; the last completes at most max(corrected) after its
    // slot. CPU over [drop, last possible completion] (the drop's own cost included).
    let from = storm.start_us;
    let to = (storm.start_us + STORM_BACKOFF_MAX_US + cmax).min(storm.end_us);
    let span_us = (STORM_BACKOFF_MAX_US - STORM_BACKOFF_MIN_US + cmax).max(1);
    let f = StormFigures {
        reconnects,
        full,
        resumed,
        rate_lo: reconnects as f64 / (span_us as f64 / 1e6),
        connect_p99_us: c99,
        tls_p99_us: tls.map(|t| t.1),
        client_cpu_us: cpu_between(bench, &run.client, from, to),
        broker_cpu_us: cpu_between(bench, &run.broker, from, to),
    };
    println!(
        "  {label}: ramp {} connected{}; storm drops {drops}, reconnects {reconnects}, failed {failures}, \
         ≥ {:.0} reconnects/s",
        rc.get(Counter::ConnectSuccesses),
        if wire == Wire::Plain {
            String::new()
        } else {
            format!(
                " ({} full, {} resumed handshakes)",
                rc.get(Counter::TlsHandshakesFull),
                rc.get(Counter::TlsHandshakesResumed)
            )
        },
        f.rate_lo,
    );
    if wire != Wire::Plain {
        println!(
            "        storm handshakes: {resumed} resumed, {full} full; tls_handshake p50 {} p99 {} max {}",
            tls.map_or("-".into(), |t| fmt_us(t.0)),
            tls.map_or("-".into(), |t| fmt_us(t.1)),
            tls.map_or("-".into(), |t| fmt_us(t.2)),
        );
    }
    println!(
        "        storm connect corrected p50 {} p99 {} max {}",
        fmt_us(c50),
        fmt_us(c99),
        fmt_us(cmax)
    );
    let n = reconnects.max(1) as f64;
    if let Some(cpu) = f.client_cpu_us {
        println!(
            "        client CPU from the drop to the last reconnect ({:.2} s): {:.0} ms = {:.0} µs per reconnect",
            (to - from) as f64 / 1e6,
            cpu / 1000.0,
            cpu / n
        );
    }
    if let Some(b) = f.broker_cpu_us {
        println!(
            "        mosquitto CPU over the same window: {:.0} ms = {:.0} µs per reconnect",
            b / 1000.0,
            b / n
        );
    }
    Ok(f)
}
