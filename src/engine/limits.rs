//! Process and host limits that decide how many devices fit, and the assessment `doctor` prints and
//! `run` enforces before connecting anything.

use crate::plan::Plan;

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
        let ports = read_trim("/proc/sys/net/ipv4/ip_local_port_range")
            .and_then(|s| {
                let mut it = s.split_whitespace().filter_map(|x| x.parse::<u32>().ok());
                Some((it.next()?, it.next()?))
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

    /// Local ports per (source address, broker address) pair.
    pub fn port_count(&self) -> u64 {
        u64::from(
            self.ephemeral_ports
                .1
                .saturating_sub(self.ephemeral_ports.0),
        ) + 1
    }
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
    // local ports per (source address, broker address)
    let targets = plan.scenario.broker.targets().len().max(1) as u64;
    let sources = plan.scenario.broker.source_addresses.len().max(1) as u64;
    let per_pair = devices.div_ceil(targets * sources);
    let ports = f.port_count();
    let spare = ports.saturating_sub(ports / 20); // keep 5% for everything else
    let more_sources = devices.div_ceil(targets * spare.max(1)).max(sources + 1);
    out.push(Finding {
        ok: per_pair <= spare,
        what: format!(
            "local ports: {per_pair} connections per (source address, broker) pair over {sources} source address(es) and {targets} broker address(es); {ports} ports in the ephemeral range {}-{}",
            f.ephemeral_ports.0, f.ephemeral_ports.1
        ),
        fix: format!(
            "add source addresses (`broker.source_addresses: [\"127.0.0.2-127.0.0.{}\"]` on loopback; {more_sources} in all), add broker listeners to `broker.urls`, or widen net.ipv4.ip_local_port_range",
            (more_sources + 1).min(254)
        ),
    });
    // memory on this host: devices, and the latency histograms of every phase x group
    let device_bytes = devices * (USER_BYTES_PER_DEVICE + KERNEL_BYTES_PER_DEVICE);
    let threads = u64::try_from(f.cores).unwrap_or(1).max(1);
    let hist_bytes = histogram_bytes(plan, workers, threads);
    let bytes = device_bytes.saturating_add(hist_bytes);
    out.push(Finding {
        ok: f.mem_available_bytes == 0 || bytes <= f.mem_available_bytes,
        what: format!(
            "memory: ~{} MiB for {devices} devices (~{:.1} KB each, user + kernel) and up to ~{} MiB of latency histograms ({} phases x {} groups, {threads} worker threads per process); {} MiB available",
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
