//! Process and host limits that decide how many devices fit, and the assessment `doctor` prints and
//! `run` enforces before connecting anything.

use std::net::{IpAddr, Ipv4Addr};

use crate::plan::Plan;
use crate::scenario::BrokerAssign;

/// The most source addresses chosen automatically (as many as a scenario may list).
const MAX_AUTO_SOURCES: u64 = 65_536;

/// Open-file limits `(soft, hard)` after raising the soft limit to the hard one.
pub fn raise_open_files() -> (u64, u64) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return (0, 0);
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        (lim.rlim_cur, lim.rlim_max)
    }
    #[cfg(not(unix))]
    {
        (0, 0)
    }
}

/// File descriptors the process needs besides device sockets (runtime, broker listener, files, stdio).
pub const FD_RESERVE: u64 = 64;
/// Planning figures per connected device on the client host (DESIGN.md section 6).
pub const USER_BYTES_PER_DEVICE: u64 = 1_800;
pub const KERNEL_BYTES_PER_DEVICE: u64 = 4_400;
/// Planning figure per connection in a broker process on this host (mosquitto 2.0 measured ~0.7 KB;
/// rumqttd more): its kernel socket comes on top, [`KERNEL_BYTES_PER_DEVICE`] like the client's end.
pub const BROKER_USER_BYTES_PER_CONNECTION: u64 = 1_000;

/// Whether `devices` sockets fit under `soft` open files, with the reserve (and the embedded broker's
/// own sockets when it runs in this process).
pub fn fits(devices: u64, soft: u64, embedded_broker: bool) -> bool {
    let per_device = if embedded_broker { 2 } else { 1 };
    devices
        .saturating_mul(per_device)
        .saturating_add(FD_RESERVE)
        <= soft
}

/// What this host allows.
#[derive(Debug, Clone)]
pub struct Facts {
    pub open_files_soft: u64,
    pub open_files_hard: u64,
    /// Local ports the kernel hands out, `(low, high)`.
    pub ephemeral_ports: (u32, u32),
    pub mem_available_bytes: u64,
    pub mem_total_bytes: u64,
    pub cores: usize,
    pub somaxconn: u64,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn meminfo(key: &str) -> u64 {
    read_trim("/proc/meminfo")
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Facts {
    /// Read the limits (raising the soft open-file limit first).
    pub fn gather() -> Facts {
        let (soft, hard) = raise_open_files();
        // `FLEETSTORM_LOCAL_PORT_RANGE=LOW-HIGH` plans with another range than the kernel's (for a host
        // whose /proc does not tell the truth, e.g. some containers; and for tests).
        let ports = std::env::var(PORT_RANGE_ENV)
            .ok()
            .and_then(|s| parse_port_range(&s))
            .or_else(|| {
                read_trim("/proc/sys/net/ipv4/ip_local_port_range")
                    .and_then(|s| parse_port_range(&s))
            })
            .unwrap_or((32768, 60999));
        Facts {
            open_files_soft: soft,
            open_files_hard: hard,
            ephemeral_ports: ports,
            mem_available_bytes: meminfo("MemAvailable:"),
            mem_total_bytes: meminfo("MemTotal:"),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            somaxconn: read_trim("/proc/sys/net/core/somaxconn")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }
    }

    /// Ports in the ephemeral range.
    pub fn port_count(&self) -> u64 {
        u64::from(
            self.ephemeral_ports
                .1
                .saturating_sub(self.ephemeral_ports.0),
        ) + 1
    }

    /// Connections one (source address, broker address) pair can really hold: `connect()` gets about
    /// half the ephemeral range (Linux keeps the other parity of ports for `bind()`; measured: 14.2k
    /// connections per broker with the range 32768-60999), less 5% kept for everything else.
    pub fn usable_ports_per_pair(&self) -> u64 {
        let half = self.port_count() / 2;
        half.saturating_sub(half / 20).max(1)
    }
}

/// The environment variable that overrides the ephemeral port range fleetstorm plans with.
pub const PORT_RANGE_ENV: &str = "FLEETSTORM_LOCAL_PORT_RANGE";

/// `"LOW HIGH"` (as in /proc) or `"LOW-HIGH"`.
fn parse_port_range(text: &str) -> Option<(u32, u32)> {
    let mut it = text
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<u32>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (lo <= hi && hi <= 65_535 && it.next().is_none()).then_some((lo, hi))
}

/// The most devices any one broker address receives under the plan's assignment.
pub fn devices_per_target(plan: &Plan) -> u64 {
    let targets = plan.scenario.broker.targets().len().max(1);
    match plan.scenario.broker.assign {
        BrokerAssign::RoundRobin => plan.total_devices().div_ceil(targets as u64),
        BrokerAssign::ByGroup => {
            let mut per = vec![0u64; targets];
            for (g, group) in plan.scenario.groups.iter().enumerate() {
                if let Some(n) = per.get_mut(g % targets) {
                    *n += u64::from(group.count);
                }
            }
            per.into_iter().max().unwrap_or(0)
        }
    }
}

/// Whether every broker address is on loopback (the embedded broker is).
fn brokers_on_loopback(plan: &Plan) -> bool {
    plan.scenario.broker.targets().iter().all(|u| {
        u.host.eq_ignore_ascii_case("localhost")
            || u.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Loopback source addresses chosen because the plan needs more local ports than one address has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSources {
    pub addresses: Vec<IpAddr>,
    /// The most connections one broker address receives.
    pub per_target: u64,
    /// Connections one (source address, broker address) pair holds.
    pub usable: u64,
}

impl AutoSources {
    /// One line for the console and `doctor`.
    pub fn describe(&self) -> String {
        let last = self
            .addresses
            .last()
            .map_or_else(String::new, ToString::to_string);
        format!(
            "source addresses: 127.0.0.1-{last} ({} chosen automatically: {} connections per broker address, ~{} local ports usable by connect() per source address)",
            self.addresses.len(),
            self.per_target,
            self.usable
        )
    }
}

/// The loopback source addresses `127.0.0.1, 127.0.0.2, ...` that hold `per_target` connections per
/// broker address at `usable` each; `None` when one address is enough.
pub fn choose_loopback_sources(per_target: u64, usable: u64) -> Option<Vec<IpAddr>> {
    let needed = per_target.div_ceil(usable.max(1));
    if needed <= 1 {
        return None;
    }
    // 127.0.0.1 + n stays inside 127/8 (Linux routes all of it to loopback).
    let needed = needed.min(MAX_AUTO_SOURCES);
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    Some(
        (0..needed)
            .map(|i| IpAddr::V4(Ipv4Addr::from(base + i as u32)))
            .collect(),
    )
}

/// When the broker is on loopback, the scenario names no source addresses, and the plan needs more
/// local ports per broker address than one source address has, pick loopback source addresses.
/// Decided from the whole fleet (every worker process of this host shares the port space, and each
/// makes the same choice).
pub fn auto_sources(plan: &Plan, f: &Facts) -> Option<AutoSources> {
    if !plan.scenario.broker.source_addresses.is_empty() || !brokers_on_loopback(plan) {
        return None;
    }
    let per_target = devices_per_target(plan);
    let usable = f.usable_ports_per_pair();
    let addresses = choose_loopback_sources(per_target, usable)?;
    Some(AutoSources {
        addresses,
        per_target,
        usable,
    })
}

/// The plan with [`auto_sources`] applied (the resolved scenario in the report lists them).
pub fn with_auto_sources(plan: Plan, f: &Facts) -> (Plan, Option<AutoSources>) {
    let Some(auto) = auto_sources(&plan, f) else {
        return (plan, None);
    };
    let mut scenario = (*plan.scenario).clone();
    scenario.broker.source_addresses = auto.addresses.clone();
    (Plan::new(scenario, plan.shard), Some(auto))
}

/// One line of the assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    /// The exact fix when not ok.
    pub fix: String,
}

/// Worker processes the open-file limit requires for `devices` (at least 1).
pub fn workers_needed(devices: u64, soft: u64) -> u32 {
    if soft == 0 {
        return 1; // unknown limit: do not guess
    }
    let per = soft.saturating_sub(FD_RESERVE).max(1);
    u32::try_from(devices.div_ceil(per))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Does the plan fit this host with `workers` processes?
pub fn assess(plan: &Plan, workers: u32, f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let devices = plan.shard_devices();
    let workers = workers.max(1);
    let embedded = plan.scenario.broker.url.is_none();
    let soft = f.open_files_soft;
    // open files, per process
    let per_process = devices.div_ceil(u64::from(workers));
    let in_process_broker = embedded && workers == 1;
    let need = per_process * if in_process_broker { 2 } else { 1 } + FD_RESERVE;
    let ok = soft == 0 || need <= soft;
    let suggested = workers_needed(devices, soft).max(2);
    out.push(Finding {
        ok,
        what: format!(
            "open files: {per_process} devices per process need {need}{}; the limit is {soft} (hard {})",
            if in_process_broker { " (the embedded broker holds the other end of each socket)" } else { "" },
            f.open_files_hard
        ),
        fix: if embedded {
            format!("run against an external broker (--broker mqtt://HOST:PORT) with `--workers {suggested}` (or `--workers auto`), or raise the hard limit (ulimit -Hn / LimitNOFILE)")
        } else {
            format!("run with `--workers {suggested}` (or `--workers auto`), or raise the hard limit (ulimit -Hn / LimitNOFILE)")
        },
    });
    if embedded && workers > 1 {
        let need = devices + FD_RESERVE;
        out.push(Finding {
            ok: soft == 0 || need <= soft,
            what: format!("embedded broker: one process holding {devices} connections needs {need} open files; the limit is {soft}"),
            fix: "start several brokers (e.g. mosquitto on several loopback ports) and list them in `broker.urls`".into(),
        });
    }
    // local ports per (source address, broker address): connect() gets about half the range
    let targets = plan.scenario.broker.targets().len().max(1) as u64;
    let sources = plan.scenario.broker.source_addresses.len().max(1) as u64;
    let per_target = devices_per_target(plan).min(devices);
    let per_pair = per_target.div_ceil(sources);
    let ports = f.port_count();
    let usable = f.usable_ports_per_pair();
    let more_sources = per_target.div_ceil(usable).max(sources + 1);
    out.push(Finding {
        ok: per_pair <= usable,
        what: format!(
            "local ports: {per_pair} connections per (source address, broker) pair over {sources} source address(es) and {targets} broker address(es); ~{usable} usable by connect() per pair (about half of the {ports} ports in the ephemeral range {}-{})",
            f.ephemeral_ports.0, f.ephemeral_ports.1
        ),
        fix: format!(
            "add source addresses (`broker.source_addresses: [\"127.0.0.2-127.0.0.{}\"]` on loopback; {more_sources} in all), add broker listeners to `broker.urls`, or widen net.ipv4.ip_local_port_range",
            (more_sources + 1).min(254)
        ),
    });
    // brokers on this host (loopback): each process holds its share of the fleet under the same
    // open-file limit, and the other end of every socket costs memory here too
    let local_brokers = brokers_on_loopback(plan);
    if local_brokers && !embedded {
        let need = per_target + FD_RESERVE;
        let brokers_needed = devices.div_ceil(soft.saturating_sub(FD_RESERVE).max(1));
        out.push(Finding {
            ok: soft == 0 || need <= soft,
            what: format!(
                "broker processes: {per_target} connections per broker address need {need} open files in its process if it runs under this host's limit ({soft})"
            ),
            fix: format!(
                "start more broker processes on other ports and list them in `broker.urls` (at least {brokers_needed}), or raise the brokers' open-file limit"
            ),
        });
    }
    // memory on this host: devices, the brokers' ends when they run here, and the latency
    // histograms of every phase x group
    let device_bytes = devices * (USER_BYTES_PER_DEVICE + KERNEL_BYTES_PER_DEVICE);
    let broker_bytes = if local_brokers {
        devices * (BROKER_USER_BYTES_PER_CONNECTION + KERNEL_BYTES_PER_DEVICE)
    } else {
        0
    };
    let threads = u64::try_from(f.cores).unwrap_or(1).max(1);
    let hist_bytes = histogram_bytes(plan, workers, threads);
    let bytes = device_bytes
        .saturating_add(broker_bytes)
        .saturating_add(hist_bytes);
    let broker_part = if local_brokers {
        format!(
            ", ~{} MiB for the brokers' ends on this host (~{:.1} KB per connection, user + kernel)",
            broker_bytes >> 20,
            (BROKER_USER_BYTES_PER_CONNECTION + KERNEL_BYTES_PER_DEVICE) as f64 / 1000.0
        )
    } else {
        String::new()
    };
    out.push(Finding {
        ok: f.mem_available_bytes == 0 || bytes <= f.mem_available_bytes,
        what: format!(
            "memory: ~{} MiB for {devices} devices (~{:.1} KB each, user + kernel){broker_part} and up to ~{} MiB of latency histograms ({} phases x {} groups, {threads} worker threads per process); {} MiB available",
            device_bytes >> 20,
            (USER_BYTES_PER_DEVICE + KERNEL_BYTES_PER_DEVICE) as f64 / 1000.0,
            hist_bytes >> 20,
            plan.scenario.phases.len(),
            plan.scenario.groups.len(),
            f.mem_available_bytes >> 20
        ),
        fix: "spread the fleet over several hosts with `--shard I/N` and merge with `fleetstorm report merge`".into(),
    });
    out
}

/// Upper bound of the memory latency histograms take in a run: every worker thread keeps, for each
/// phase and group, a corrected and an uncorrected histogram of each metric it records there
/// ([`HISTOGRAM_BYTES`](crate::metrics::histogram::HISTOGRAM_BYTES) each: connect and the QoS ack on
/// device threads; e2e, suback and command round trips on the observer thread), and at the end the
/// merged snapshot exists up to three more times (a worker's copy on the pipe, the merge, the report).
pub fn histogram_bytes(plan: &Plan, workers: u32, threads_per_process: u64) -> u64 {
    let s = &plan.scenario;
    let per_metric = crate::metrics::histogram::HISTOGRAM_BYTES * 2;
    let mut device_side = 0u64;
    let mut observer_side = 0u64;
    for (i, g) in s.groups.iter().enumerate() {
        device_side += 1 + u64::from(u8::from(g.qos) > 0);
        if s.observers.iter().any(|o| o.groups.contains(&i)) {
            observer_side += 2;
        }
        observer_side += u64::from(g.commands.is_some());
    }
    let phases = s.phases.len() as u64;
    let during = u64::from(workers.max(1))
        .saturating_mul(phases)
        .saturating_mul(per_metric)
        .saturating_mul(
            device_side
                .saturating_mul(threads_per_process)
                .saturating_add(observer_side),
        );
    let after = 3u64
        .saturating_mul(phases)
        .saturating_mul(per_metric)
        .saturating_mul(device_side + observer_side);
    during.saturating_add(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_both_spellings() {
        assert_eq!(parse_port_range("32768\t60999"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1000-1019"), Some((1000, 1019)));
        assert_eq!(parse_port_range("2000-1000"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
        assert_eq!(parse_port_range("x"), None);
    }

    #[test]
    fn usable_share_is_about_half_the_range() {
        let mut f = Facts::gather();
        f.ephemeral_ports = (32768, 60999);
        // 28232 ports; connect() gets half, 5% of that kept back
        assert_eq!(f.usable_ports_per_pair(), 14116 - 705);
    }

    #[test]
    fn chooser_picks_consecutive_loopback_addresses_only_when_needed() {
        assert_eq!(choose_loopback_sources(100, 100), None);
        assert_eq!(choose_loopback_sources(0, 100), None);
        let picked = choose_loopback_sources(101, 100).unwrap();
        assert_eq!(
            picked,
            vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2])]
        );
        let many = choose_loopback_sources(300 * 10, 10).unwrap();
        assert_eq!(many.len(), 300);
        assert_eq!(many.last(), Some(&IpAddr::from([127, 0, 1, 44])));
        assert!(many.iter().all(IpAddr::is_loopback));
    }

    #[test]
    fn fit_table() {
        assert!(fits(1000, 20_000, false));
        assert!(fits(19_900, 20_000, false));
        assert!(!fits(19_990, 20_000, false));
        assert!(!fits(10_000, 20_000, true));
        assert!(fits(9_000, 20_000, true));
        assert_eq!(workers_needed(100_000, 20_000), 6);
        assert_eq!(workers_needed(10, 20_000), 1);
        assert_eq!(workers_needed(10, 0), 1);
    }
}

#[cfg(test)]
mod broker_side_tests {
    use super::*;
    use crate::plan::{Plan, Shard};

    fn plan(brokers: u32, devices: u32) -> Plan {
        let urls: String = (0..brokers)
            .map(|i| format!("    - mqtt://127.0.0.1:{}\n", 64000 + i))
            .collect();
        let text = format!(
            "version: 1\nname: t\nbroker:\n  urls:\n{urls}groups:\n  - name: g\n    count: {devices}\n    profile: energy-meter\n    interval: 60s\nphases:\n  - steady: {{ duration: 10s }}\n"
        );
        let scenario = crate::scenario::parse(&text, "t.yaml").unwrap();
        Plan::new(scenario, Shard::default())
    }

    fn facts() -> Facts {
        Facts {
            open_files_soft: 20_000,
            open_files_hard: 20_000,
            ephemeral_ports: (32768, 60999),
            mem_available_bytes: 24 << 30,
            mem_total_bytes: 24 << 30,
            cores: 2,
            somaxconn: 4096,
        }
    }

    fn finding<'a>(all: &'a [Finding], what: &str) -> &'a Finding {
        all.iter().find(|f| f.what.starts_with(what)).unwrap()
    }

    #[test]
    fn a_local_broker_farm_is_checked_per_broker_process() {
        // a million on 60 local brokers: ~16.7k each fits a broker process's 20k open files
        let all = assess(&plan(60, 1_000_000), 51, &facts());
        assert!(finding(&all, "broker processes").ok);
        // the same million on 40 brokers: 25k each does not, and the fix names how many brokers
        let all = assess(&plan(40, 1_000_000), 51, &facts());
        let f = finding(&all, "broker processes");
        assert!(!f.ok);
        assert!(f.fix.contains("at least 51"), "{}", f.fix);
    }

    #[test]
    fn memory_counts_both_ends_when_the_brokers_are_local() {
        let all = assess(&plan(60, 1_000_000), 51, &facts());
        let m = finding(&all, "memory");
        assert!(m.what.contains("brokers' ends"), "{}", m.what);
        assert!(m.ok, "{}", m.what);
        // 24 GiB does not hold 5 million devices with both ends
        let all = assess(&plan(60, 5_000_000), 260, &facts());
        assert!(!finding(&all, "memory").ok);
    }
}
