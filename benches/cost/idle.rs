//! a. Idle memory: client RSS per idle device (marginal, 1k vs 10k idle devices), over plain TCP, over
//! WebSocket to an in-process stub broker, and over TLS.

use super::*;

// ---- a. idle memory ----

pub(super) struct IdleFigures {
    devices: u64,
    connected: u64,
    rss_kb: u64,
    hwm_kb: u64,
    broker_delta_kb: i64,
}

pub(super) fn idle_run(bench: &Bench, devices: u64, tls: bool) -> Result<IdleFigures, String> {
    let name = format!("idle-{}{devices}", if tls { "tls-" } else { "" });
    let yaml = scenario_yaml(&name, devices, "1h", 0, "2000/s", 500, "20s");
    let wire = if tls { Wire::Tls } else { Wire::Plain };
    // Extra `broker.tls` keys, one per line: `resumption: false` -> `    resumption: false\n`.
    let extra: String = std::env::var("FLEETSTORM_BENCH_IDLE_TLS")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("    {l}\n"))
        .collect();
    if tls && !extra.is_empty() {
        println!(
            "  (TLS runs with broker.tls extras: {})",
            extra.trim().replace('\n', ";")
        );
    }
    let run = run_fleetstorm_over(bench, &name, &yaml, wire, &extra)?;
    let ramp = phase(&run.report, "ramp")?;
    let at = ramp.end_us + IDLE_SETTLE_US;
    let client = nearest(&run.client, at).ok_or("no client samples")?;
    let broker = nearest(&run.broker, at).ok_or("no broker samples")?;
    let hwm_kb = run.client.last().map_or(0, |s| s.hwm_kb);
    let broker_delta_kb = broker.rss_kb as i64 - run.broker_before.map_or(0, |s| s.rss_kb as i64);
    println!(
        "  {devices:>6} idle devices: {} connected (peak), client RSS {} KB at ramp end + 5 s \
         (sampled {:+.2} s off), VmHWM {} KB at exit; mosquitto RSS +{} KB",
        run.report.summary.devices_connected_peak,
        client.rss_kb,
        (client.at_us as f64 - at as f64) / 1e6,
        hwm_kb,
        broker_delta_kb
    );
    Ok(IdleFigures {
        devices,
        connected: run.report.summary.devices_connected_peak,
        rss_kb: client.rss_kb,
        hwm_kb,
        broker_delta_kb,
    })
}

pub(super) fn idle_memory(
    bench: &Bench,
    rows: &mut Vec<(String, String)>,
    cmp: &mut Comparison,
) -> Result<(), String> {
    println!();
    println!(
        "== a. idle memory (interval 1h, ramp 2000/s, steady 20 s, sampled at ramp end + 5 s) =="
    );
    let small = idle_run(bench, 1_000, false)?;
    let large = idle_run(bench, 10_000, false)?;
    let per_device_kb =
        (large.rss_kb as f64 - small.rss_kb as f64) / (large.devices as f64 - small.devices as f64);
    cmp.idle_kb(Wire::Plain, per_device_kb);
    match idle_tls(bench, rows) {
        Ok(kb) => cmp.idle_kb(Wire::Tls, kb),
        Err(e) => println!("  idle memory over TLS: failed: {e}"),
    }
    let broker_per_conn_kb = large.broker_delta_kb as f64 / large.connected.max(1) as f64;
    println!(
        "  client RSS per idle device (marginal, (RSS_10k - RSS_1k) / 9000): {per_device_kb:.2} KB"
    );
    println!(
        "  client RSS / devices: {:.2} KB at 1k, {:.2} KB at 10k (absolute, includes the fixed base)",
        small.rss_kb as f64 / small.devices as f64,
        large.rss_kb as f64 / large.devices as f64
    );
    println!("  mosquitto RSS per connection (10k run, over its pre-run RSS): {broker_per_conn_kb:.2} KB");
    rows.push((
        "client RSS per idle device (marginal)".into(),
        format!("{per_device_kb:.2} KB   (target <= 1 KB, issue 12)"),
    ));
    rows.push((
        "client RSS at 1k / 10k idle devices".into(),
        format!(
            "{:.1} MB / {:.1} MB  (VmHWM {:.1} / {:.1} MB)",
            small.rss_kb as f64 / 1024.0,
            large.rss_kb as f64 / 1024.0,
            small.hwm_kb as f64 / 1024.0,
            large.hwm_kb as f64 / 1024.0
        ),
    ));
    rows.push((
        "mosquitto RSS per connection".into(),
        format!("{broker_per_conn_kb:.2} KB"),
    ));
    Ok(())
}

// ---- a2. idle memory over WebSocket (ws://) ----

/// A WebSocket MQTT stub in this process for the ws idle line (Debian's mosquitto will not start a
/// websockets listener here, and the Python broker the tests use is too slow to take 10k
/// connections in a ramp): it answers each upgrade with 101 and a CONNACK frame, then reads and
/// discards until the client goes. Only the client is measured.
pub(super) fn ws_stub() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    let port = listener.local_addr().map_err(|e| format!("{e}"))?.port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("stub runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("stub listener");
            loop {
                let Ok((c, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(ws_stub_conn(c));
            }
        });
    });
    Ok(port)
}

async fn ws_stub_conn(mut c: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let Some(key) = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
    else {
        return;
    };
    let mut reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        fleetstorm::mqtt::ws::accept_key(key.trim())
    )
    .into_bytes();
    reply.extend_from_slice(&[0x82, 4, 0x20, 2, 0, 0]); // CONNACK, accepted
    drop(got);
    if c.write_all(&reply).await.is_err() {
        return;
    }
    while let Ok(n) = c.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Client RSS at ramp end + 5 s of `devices` idle ws:// devices against the stub on `port`, and the
/// peak connected.
pub(super) fn ws_idle_run(bench: &Bench, port: u16, devices: u64) -> Result<(u64, u64), String> {
    let name = format!("idle-ws-{devices}");
    let dir = bench.work.join(&name);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario_path = dir.join("scenario.yaml");
    let yaml = scenario_yaml(&name, devices, "1h", 0, "2000/s", 500, "20s");
    fs::write(&scenario_path, yaml).map_err(|e| format!("{e}"))?;
    let out = dir.join("report");
    let url = format!("ws://127.0.0.1:{port}/mqtt");
    let mut child = Command::new(&bench.fleetstorm)
        .arg("run")
        .arg(&scenario_path)
        .args(["--broker", &url, "--no-progress", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout.txt")).map_err(|e| format!("{e}"))?)
        .stderr(fs::File::create(dir.join("stderr.txt")).map_err(|e| format!("{e}"))?)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bench.fleetstorm.display()))?;
    let mut samples = Vec::new();
    let mut next = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break s;
        }
        if let Some(s) = sample(child.id()) {
            samples.push(s);
        }
        next += SAMPLE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    let report = report::load(&out.join(report::REPORT_JSON)).map_err(|e| {
        let err = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        format!("no report ({e}); fleetstorm exited with {status}; stderr:\n{err}")
    })?;
    let at = phase(&report, "ramp")?.end_us + IDLE_SETTLE_US;
    let client = nearest(&samples, at).ok_or("no client samples")?;
    let connected = report.summary.devices_connected_peak;
    println!(
        "  {devices:>6} idle ws devices: {connected} connected (peak), client RSS {} KB at ramp end + 5 s \
         (sampled {:+.2} s off)",
        client.rss_kb,
        (client.at_us as f64 - at as f64) / 1e6,
    );
    Ok((client.rss_kb, connected))
}

/// The idle-memory line for WebSocket devices: the same fleets as a., over ws:// to a stub.
pub(super) fn idle_memory_ws(
    bench: &Bench,
    rows: &mut Vec<(String, String)>,
) -> Result<(), String> {
    println!();
    println!("== a2. idle memory over WebSocket (as a., ws:// to an in-process stub broker) ==");
    let port = ws_stub()?;
    let (small, small_up) = ws_idle_run(bench, port, 1_000)?;
    let (large, large_up) = ws_idle_run(bench, port, 10_000)?;
    let per_device_kb = (large as f64 - small as f64) / 9_000.0;
    println!(
        "  client RSS per idle ws device (marginal, (RSS_10k - RSS_1k) / 9000): {per_device_kb:.2} KB \
         ({small_up} and {large_up} connected)"
    );
    rows.push((
        "client RSS per idle ws device (marginal)".into(),
        format!("{per_device_kb:.2} KB   (same fleets as plain, ws:// stub broker)"),
    ));
    Ok(())
}

/// The same idle fleets over TLS (verified, TLS 1.3 by default): client RSS per idle TLS device (KB).
pub(super) fn idle_tls(bench: &Bench, rows: &mut Vec<(String, String)>) -> Result<f64, String> {
    let small = idle_run(bench, 1_000, true)?;
    let large = idle_run(bench, 10_000, true)?;
    let per_device_kb =
        (large.rss_kb as f64 - small.rss_kb as f64) / (large.devices as f64 - small.devices as f64);
    println!(
        "  TLS: client RSS per idle TLS device (marginal, (RSS_10k - RSS_1k) / 9000): {per_device_kb:.2} KB \
         ({} / {} connected)",
        small.connected, large.connected
    );
    rows.push((
        "client RSS per idle TLS device (marginal)".into(),
        format!("{per_device_kb:.2} KB   (target <= 8 KB)"),
    ));
    Ok(per_device_kb)
}
