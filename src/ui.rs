//! The live view (`--ui ADDR`): a self-contained page (inline HTML, CSS and JS; no network beyond
//! this server) and a server-sent event stream fed by the coordinator's 1 Hz ticker (as one of the
//! engine's [`Watch`]ers), the same snapshot that feeds progress and `--prometheus`. It sits above
//! `gate`: it shows the verdicts and the report's figures at the end.
//!
//! Everything it carries is aggregate and bounded: one point per second of fixed size (the series
//! point plus a fixed set of cumulative counters), at most [`MAX_POINTS`] of them kept for clients
//! that connect late, the plan's phases and at most [`MAX_GROUP_TILES`] groups, and the final
//! outcome once. It runs on its own thread with its own small runtime, so it outlives the engine
//! and can show the verdicts, which are computed after the engine returned.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::engine::{Second, Watch};
use crate::gate::Verdict;
use crate::metrics::{Counter, Counters, Metric, SeriesPoint, GROUP_SLOTS, GROUP_SLOT_NAMES};
use crate::plan::{Plan, Timeline};
use crate::report::Report;

/// Points kept for clients that connect late (one hour at 1 Hz); older ones are dropped.
pub const MAX_POINTS: usize = 3600;
/// Groups shown as tiles (and carried in the final event); the rest are counted, not shown.
pub const MAX_GROUP_TILES: usize = 240;

/// The page: inline CSS and JS only.
const PAGE: &str = include_str!("ui_page.html");

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("cannot serve the live view on {0}: {1} (pick another --ui address, or port 0)")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot start the live view's thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Default)]
struct State {
    /// The current run's plan as the page reads it, and its JSON.
    meta_view: Option<MetaView>,
    meta: Option<Arc<str>>,
    /// Grows with every new meta (a new run, a new context line): pages get it again.
    meta_version: u64,
    /// A line above the run, from whoever runs several runs in a row (the capacity search).
    context: Option<String>,
    /// (sequence number, JSON) of the last [`MAX_POINTS`] points.
    points: VecDeque<(u64, Arc<str>)>,
    next_seq: u64,
    /// The latest per-group counters of the shown groups, with a version number.
    groups: Option<(u64, Arc<str>)>,
    final_view: Option<Arc<str>>,
    /// The run's timeline, which names each second's phase.
    timeline: Option<Timeline>,
}

impl State {
    /// Serialise the meta for pages (again, when it changed).
    fn publish_meta(&mut self) {
        if let Some(text) = self
            .meta_view
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
        {
            self.meta = Some(text.into());
            self.meta_version += 1;
        }
    }
}

struct Inner {
    state: Mutex<State>,
    changed: tokio::sync::watch::Sender<u64>,
    /// Event-stream clients connected now.
    clients: AtomicUsize,
}

/// Handle to the live view; cheap to clone. Updated once a second, never from the hot path.
#[derive(Clone)]
pub struct Ui {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").field("addr", &self.addr).finish()
    }
}

/// The fixed set of cumulative counters each point carries.
const TOTALS: [(&str, Counter); 14] = [
    ("published", Counter::Published),
    ("acked", Counter::Acked),
    ("received", Counter::Received),
    ("expected", Counter::ExpectedDeliveries),
    ("publish_failed", Counter::PublishFailed),
    ("connect_attempts", Counter::ConnectAttempts),
    ("connect_successes", Counter::ConnectSuccesses),
    ("storm_drops", Counter::StormDrops),
    ("churn_drops", Counter::ChurnDrops),
    ("observer_disconnects", Counter::ObserverDisconnects),
    ("unobserved", Counter::Unobserved),
    ("sparkplug_births", Counter::SparkplugBirths),
    ("sparkplug_deaths", Counter::SparkplugDeaths),
    ("commands_sent", Counter::CommandsSent),
];

#[derive(Serialize)]
struct PointView<'a> {
    #[serde(flatten)]
    point: &'a SeriesPoint,
    /// Index of the phase this second ends in.
    phase: usize,
    connect_failures: u64,
    disconnects: u64,
    totals: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Serialize)]
struct PhaseView {
    name: String,
    kind: &'static str,
    start_s: f64,
    end_s: f64,
}

#[derive(Clone, Serialize)]
struct GroupTile {
    name: String,
    devices: u64,
    interval_ms: u64,
    qos: u8,
    sparkplug: bool,
}

#[derive(Clone, Serialize)]
struct MetaView {
    /// Which run of this view (from 1): a page starts its charts again when it changes.
    run: u64,
    /// The context line, if any (see [`Ui::set_context`]).
    context: Option<String>,
    scenario: String,
    devices: u64,
    groups_total: usize,
    groups: Vec<GroupTile>,
    phases: Vec<PhaseView>,
    total_s: f64,
    max_points: usize,
    /// Names of the per-group figures of each `groups` event.
    group_slots: [&'static str; GROUP_SLOTS],
}

#[derive(Serialize)]
struct VerdictView {
    passed: bool,
    gate: String,
    section: String,
    detail: String,
}

#[derive(Serialize, Default)]
struct LatencyView {
    p50_us: u64,
    p99_us: u64,
    count: u64,
}

#[derive(Serialize)]
struct GroupResult {
    name: String,
    published: u64,
    acked: u64,
    received: u64,
    lost: u64,
    disconnects: u64,
    sparkplug_births: u64,
    sparkplug_deaths: u64,
    latency: Vec<(&'static str, LatencyView)>,
}

#[derive(Serialize)]
struct FinalView {
    status: String,
    message: String,
    gates_passed: bool,
    verdicts: Vec<VerdictView>,
    duration_s: f64,
    published: u64,
    acked: u64,
    received: u64,
    lost: u64,
    connect_failures: u64,
    disconnects: u64,
    latency: Vec<(&'static str, LatencyView)>,
    groups_total: usize,
    groups: Vec<GroupResult>,
}

fn latencies(g: &crate::report::GroupReport) -> Vec<(&'static str, LatencyView)> {
    g.latency
        .iter()
        .filter(|(_, l)| l.corrected.count > 0)
        .map(|(m, l)| {
            (
                m.name(),
                LatencyView {
                    p50_us: l.corrected.p50_us,
                    p99_us: l.corrected.p99_us,
                    count: l.corrected.count,
                },
            )
        })
        .collect()
}

/// The live view is one of the engine's watchers: the coordinator hands it the plan, each closed
/// second and the group counters.
impl Watch for Ui {
    fn start(&self, plan: &Plan, timeline: &Timeline, _devices: u64) {
        self.set_plan(plan, timeline);
    }

    fn wants_groups(&self) -> bool {
        true
    }

    fn groups(&self, groups: &[[u64; GROUP_SLOTS]]) {
        self.set_groups(groups);
    }

    fn second(&self, second: &Second<'_>) {
        let phase = self
            .inner
            .state
            .lock()
            .ok()
            .and_then(|s| s.timeline.as_ref().map(|t| t.phase_at(second.now_us)))
            .unwrap_or(0);
        self.push(second.point, phase, second.now);
    }
}

impl Ui {
    /// Bind `addr` (port 0 picks one) and serve from a thread of its own until the process ends.
    pub fn start(addr: SocketAddr) -> Result<Ui, UiError> {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| UiError::Bind(addr, e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| UiError::Bind(addr, e))?;
        let bound = std_listener
            .local_addr()
            .map_err(|e| UiError::Bind(addr, e))?;
        let (changed, _) = tokio::sync::watch::channel(0u64);
        let ui = Ui {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed,
                clients: AtomicUsize::new(0),
            }),
            addr: bound,
        };
        let served = ui.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(UiError::Thread)?;
        std::thread::Builder::new()
            .name("fleetstorm-ui".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let ui = served.clone();
                        tokio::spawn(async move { ui.answer(stream).await });
                    }
                });
            })
            .map_err(UiError::Thread)?;
        Ok(ui)
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.inner.state.lock() {
            f(&mut s);
        }
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// What the run will do: scenario, devices, phases and groups (before the run starts).
    pub fn set_plan(&self, plan: &Plan, timeline: &Timeline) {
        let groups = plan.groups();
        let meta = MetaView {
            run: 0,
            context: None,
            scenario: plan.scenario.name.clone(),
            devices: plan.total_devices(),
            groups_total: groups.len(),
            groups: groups
                .iter()
                .take(MAX_GROUP_TILES)
                .map(|g| GroupTile {
                    name: g.name.clone(),
                    devices: u64::from(g.count),
                    interval_ms: u64::try_from(g.interval.as_millis()).unwrap_or(u64::MAX),
                    qos: u8::from(g.qos),
                    sparkplug: matches!(g.payload, crate::scenario::PayloadKind::Sparkplug { .. }),
                })
                .collect(),
            phases: timeline
                .phases
                .iter()
                .zip(plan.scenario.phases.iter())
                .map(|(w, p)| PhaseView {
                    name: w.name.clone(),
                    kind: p.kind.kind_name(),
                    start_s: w.start_us.saturating_sub(timeline.start_us) as f64 / 1e6,
                    end_s: w.end_us.saturating_sub(timeline.start_us) as f64 / 1e6,
                })
                .collect(),
            total_s: timeline.end_us().saturating_sub(timeline.start_us) as f64 / 1e6,
            max_points: MAX_POINTS,
            group_slots: GROUP_SLOT_NAMES,
        };
        let mut meta = meta;
        self.update(|s| {
            meta.run = s.meta_view.as_ref().map_or(1, |m| m.run + 1);
            if meta.run > 1 {
                // A new run in the same view: its seconds start again from 0.
                s.points.clear();
                s.groups = None;
                s.final_view = None;
            }
            meta.context.clone_from(&s.context);
            s.meta_view = Some(meta);
            s.timeline = Some(timeline.clone());
            s.publish_meta();
        });
    }

    /// A line shown above the run (e.g. the capacity search's step), kept for the runs that follow
    /// until it is set again.
    pub fn set_context(&self, text: &str) {
        self.update(|s| {
            s.context = Some(text.to_owned());
            if let Some(m) = &mut s.meta_view {
                m.context = Some(text.to_owned());
            }
            s.publish_meta();
        });
    }

    /// One closed second: its series point, the phase it ends in and the cumulative counters.
    pub fn push(&self, point: &SeriesPoint, phase: usize, now: &Counters) {
        let totals = TOTALS
            .iter()
            .map(|(name, c)| ((*name).to_owned(), now.get(*c).into()))
            .collect();
        let view = PointView {
            point,
            phase,
            connect_failures: now.connect_failures(),
            disconnects: now.disconnects(),
            totals,
        };
        let Ok(text) = serde_json::to_string(&view) else {
            return;
        };
        self.update(|s| {
            let seq = s.next_seq;
            s.next_seq = seq.wrapping_add(1);
            s.points.push_back((seq, text.into()));
            while s.points.len() > MAX_POINTS {
                s.points.pop_front();
            }
        });
    }

    /// The cumulative per-group counters now (`[group][slot]`); only the shown groups are kept.
    pub fn set_groups(&self, groups: &[[u64; GROUP_SLOTS]]) {
        if groups.is_empty() {
            return;
        }
        let shown = groups.get(..MAX_GROUP_TILES).unwrap_or(groups);
        let Ok(text) = serde_json::to_string(shown) else {
            return;
        };
        self.update(|s| {
            let version = s.groups.as_ref().map_or(0, |g| g.0.wrapping_add(1));
            s.groups = Some((version, text.into()));
        });
    }

    /// The run is over: its outcome, the gates' verdicts and the report's figures. Waits (at most
    /// `linger`) until every open page has been sent them, so they are on screen when the process ends.
    pub fn finish(&self, report: &Report, verdicts: &[Verdict], linger: Duration) {
        let t = &report.totals.totals;
        let mut groups: Vec<GroupResult> = report
            .totals
            .groups
            .iter()
            .map(|(name, g)| GroupResult {
                name: name.clone(),
                published: g.counters.get(Counter::Published),
                acked: g.counters.get(Counter::Acked),
                received: g.deliveries.received,
                lost: g.deliveries.lost,
                disconnects: g.counters.disconnects(),
                sparkplug_births: g.counters.get(Counter::SparkplugBirths),
                sparkplug_deaths: g.counters.get(Counter::SparkplugDeaths),
                latency: latencies(g),
            })
            .collect();
        let groups_total = groups.len();
        groups.truncate(MAX_GROUP_TILES);
        let view = FinalView {
            status: serde_json::to_value(report.outcome.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: report.outcome.message.clone(),
            gates_passed: verdicts.iter().all(|v| v.passed),
            verdicts: verdicts
                .iter()
                .map(|v| VerdictView {
                    passed: v.passed,
                    gate: v.threshold.to_string(),
                    section: v.section.clone(),
                    detail: v.detail.clone(),
                })
                .collect(),
            duration_s: report.duration_s,
            published: t.counters.get(Counter::Published),
            acked: t.counters.get(Counter::Acked),
            received: t.deliveries.received,
            lost: t.deliveries.lost,
            connect_failures: t.counters.connect_failures(),
            disconnects: t.counters.disconnects(),
            latency: latencies(t),
            groups_total,
            groups,
        };
        if let Ok(text) = serde_json::to_string(&view) {
            self.update(|s| s.final_view = Some(text.into()));
        }
        // Each page's stream ends once it carried the final view.
        let deadline = Instant::now() + linger;
        while self.inner.clients.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn state_json(&self) -> String {
        let Ok(s) = self.inner.state.lock() else {
            return "{}".into();
        };
        let points: Vec<&str> = s.points.iter().map(|(_, p)| &**p).collect();
        format!(
            "{{\"meta\":{},\"points\":[{}],\"groups\":{},\"final\":{}}}",
            s.meta.as_deref().unwrap_or("null"),
            points.join(","),
            s.groups.as_ref().map_or("null", |g| &*g.1),
            s.final_view.as_deref().unwrap_or("null")
        )
    }

    async fn answer(self, mut stream: TcpStream) {
        let mut buf = [0u8; 4096];
        let mut len = 0;
        // Read the request head (bounded in size and time).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while len < buf.len() {
                match stream.read(buf.get_mut(len..).unwrap_or_default()).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf
                    .get(..len)
                    .is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n"))
                {
                    break;
                }
            }
        })
        .await;
        let head = String::from_utf8_lossy(buf.get(..len).unwrap_or_default());
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/");
        match path {
            "/" | "/index.html" => {
                respond(&mut stream, "200 OK", "text/html; charset=utf-8", PAGE).await
            }
            "/state" => {
                let body = self.state_json();
                respond(&mut stream, "200 OK", "application/json", &body).await
            }
            "/events" => self.stream_events(stream).await,
            _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
        }
    }

    /// Server-sent events: `meta` once, `history` (the points a page missed, as one array), one
    /// unnamed event per second, `groups` (the shown groups' cumulative counters) each second,
    /// `final` at the end (then the stream closes).
    async fn stream_events(self, mut stream: TcpStream) {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\nretry: 1000\n\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        self.inner.clients.fetch_add(1, Ordering::AcqRel);
        let mut changed = self.inner.changed.subscribe();
        let mut meta_sent = 0u64;
        let mut next_seq = 0u64;
        let mut groups_sent: Option<u64> = None;
        loop {
            let mut chunk = String::new();
            let mut done = false;
            if let Ok(s) = self.inner.state.lock() {
                if meta_sent != s.meta_version {
                    if let Some(m) = &s.meta {
                        chunk.push_str("event: meta\ndata: ");
                        chunk.push_str(m);
                        chunk.push_str("\n\n");
                        meta_sent = s.meta_version;
                    }
                }
                let from = next_seq;
                let new: Vec<&(u64, Arc<str>)> =
                    s.points.iter().filter(|(q, _)| *q >= from).collect();
                if let Some((last, _)) = new.last() {
                    next_seq = last.wrapping_add(1);
                }
                if new.len() > 1 {
                    // What a page missed (the history when it connects) as one event: one render.
                    chunk.push_str("event: history\ndata: [");
                    for (i, (_, p)) in new.iter().enumerate() {
                        if i > 0 {
                            chunk.push(',');
                        }
                        chunk.push_str(p);
                    }
                    chunk.push_str("]\n\n");
                } else if let Some((_, p)) = new.first() {
                    chunk.push_str("data: ");
                    chunk.push_str(p);
                    chunk.push_str("\n\n");
                }
                if let Some((version, g)) = &s.groups {
                    if groups_sent != Some(*version) {
                        chunk.push_str("event: groups\ndata: ");
                        chunk.push_str(g);
                        chunk.push_str("\n\n");
                        groups_sent = Some(*version);
                    }
                }
                if let Some(f) = &s.final_view {
                    chunk.push_str("event: final\ndata: ");
                    chunk.push_str(f);
                    chunk.push_str("\n\n");
                    done = true;
                }
            }
            if chunk.is_empty() {
                chunk.push_str(": idle\n\n");
            }
            let wrote =
                tokio::time::timeout(Duration::from_secs(10), stream.write_all(chunk.as_bytes()))
                    .await;
            if done || !matches!(wrote, Ok(Ok(()))) {
                break;
            }
            // The next second, or a keep-alive comment every 15 s.
            let _ = tokio::time::timeout(Duration::from_secs(15), changed.changed()).await;
        }
        let _ = stream.shutdown().await;
        self.inner.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The metrics whose p50/p99 the page charts, in order.
pub const CHARTED: [Metric; 5] = [
    Metric::E2e,
    Metric::Puback,
    Metric::Pubcomp,
    Metric::Connect,
    Metric::CommandRtt,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Ui {
        Ui::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap()
    }

    fn state(ui: &Ui) -> serde_json::Value {
        serde_json::from_str(&ui.state_json()).unwrap()
    }

    #[test]
    fn keeps_at_most_max_points_newest_last() {
        let ui = ui();
        assert_ne!(ui.addr().port(), 0, "the real port is known");
        let c = Counters::default();
        for t in 1..=(MAX_POINTS as u32 + 25) {
            ui.push(&SeriesPoint::from_delta(t, 1, &c, &c), 0, &c);
        }
        let s = state(&ui);
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), MAX_POINTS);
        assert_eq!(points[0]["t_s"], 26);
        assert_eq!(points[MAX_POINTS - 1]["t_s"], MAX_POINTS as u64 + 25);
    }

    #[test]
    fn a_point_is_small_and_fixed_in_size_whatever_the_counts() {
        let ui = ui();
        let mut c = Counters::default();
        for &k in Counter::ALL {
            c.add(k, u64::MAX / 64);
        }
        let mut p = SeriesPoint::from_delta(u32::MAX, i64::MAX, &Counters::default(), &c);
        p.e2e_p99_us = Some(u64::MAX);
        ui.push(&p, usize::MAX, &c);
        let text = ui.state_json();
        // Even with every figure at its widest, one point stays around a kilobyte.
        assert!(text.len() < 1500, "{} bytes: {text}", text.len());
    }

    #[test]
    fn groups_are_capped_to_the_shown_tiles() {
        let ui = ui();
        ui.set_groups(&vec![[1u64; GROUP_SLOTS]; 1000]);
        let s = state(&ui);
        let rows = s["groups"].as_array().unwrap();
        assert_eq!(rows.len(), MAX_GROUP_TILES);
        assert_eq!(rows[0].as_array().unwrap().len(), GROUP_SLOTS);
        // Nothing to show: nothing changes.
        ui.set_groups(&[]);
        assert_eq!(
            state(&ui)["groups"].as_array().unwrap().len(),
            MAX_GROUP_TILES
        );
    }

    fn plan(name: &str) -> (Plan, Timeline) {
        let text = format!(
            "name: {name}\ngroups:\n  - {{ name: a, count: 10, profile: energy-meter }}\nphases:\n  - ramp: {{ connect_rate: 100/s }}\n  - steady: {{ duration: 2s }}\n"
        );
        let s = crate::scenario::parse(&text, "ui.yaml").unwrap();
        let plan = Plan::new(s, crate::plan::Shard::default());
        let tl = plan.timeline(1_000_000);
        (plan, tl)
    }

    #[test]
    fn a_second_run_in_the_view_starts_its_seconds_again_under_the_context_line() {
        let ui = ui();
        let c = Counters::default();
        let (p1, t1) = plan("first");
        ui.set_context("step 1");
        ui.set_plan(&p1, &t1);
        ui.push(&SeriesPoint::from_delta(1, 1, &c, &c), 0, &c);
        let s = state(&ui);
        assert_eq!(s["meta"]["run"], 1);
        assert_eq!(s["meta"]["context"], "step 1");
        assert_eq!(s["points"].as_array().unwrap().len(), 1);
        let (p2, t2) = plan("second");
        ui.set_context("step 2");
        ui.set_plan(&p2, &t2);
        let s = state(&ui);
        assert_eq!(s["meta"]["run"], 2);
        assert_eq!(s["meta"]["scenario"], "second");
        assert_eq!(s["meta"]["context"], "step 2");
        assert!(s["points"].as_array().unwrap().is_empty(), "{s}");
        // A new context line alone reaches pages too.
        ui.set_context("done");
        assert_eq!(state(&ui)["meta"]["context"], "done");
    }

    #[test]
    fn a_taken_address_is_an_error_naming_the_flag() {
        let first = ui();
        let e = Ui::start(first.addr()).unwrap_err();
        assert!(e.to_string().contains("--ui"), "{e}");
    }
}
