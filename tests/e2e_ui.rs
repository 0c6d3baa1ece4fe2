//! The `--ui` live view: the page and its event stream served by a running fleetstorm (embedded
//! broker), read over plain HTTP, and in headless Chromium when `FLEETSTORM_CHROMIUM` names the
//! binary (driven over `--remote-debugging-pipe`): the page loads, its numbers change while the run
//! goes on, and at the end they equal the report's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{load_report, spawn, wait_within, Workspace};
use fleetstorm::metrics::Counter;
use serde_json::Value;

/// Two groups, an observer, a 0.5 s ramp and `steady_s` seconds steady, two gates.
fn scenario(name: &str, steady_s: u64) -> String {
    format!(
        "\
name: {name}
seed: 3
groups:
  - name: meters
    count: 40
    profile: energy-meter
    interval: 100ms
    qos: 1
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
  - name: sensors
    count: 20
    profile: environment-sensor
    interval: 200ms
    qos: 0
    topic: \"fleetstorm-test/{name}/s/{{client_id}}\"
observers:
  - name: audit
phases:
  - ramp: {{ connect_rate: 120/s }}
  - steady: {{ duration: {steady_s}s }}
thresholds:
  - \"connect_failures == 0\"
  - \"e2e.p99 < 60s\"
"
    )
}

/// The live view's address, from the line fleetstorm prints at start.
fn ui_address(ws: &Workspace, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let err = std::fs::read_to_string(ws.stderr_path()).unwrap_or_default();
        if let Some(rest) = err.split("live view: http://").nth(1) {
            return rest.split('/').next().unwrap().to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "fleetstorm exited before printing the live view address:\n{err}"
        );
        assert!(Instant::now() < deadline, "no live view address:\n{err}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

fn state(addr: &str) -> Value {
    serde_json::from_str(&get(addr, "/state").1).unwrap()
}

fn last_published(state: &Value) -> Option<u64> {
    state["points"].as_array()?.last()?["totals"]["published"].as_u64()
}

/// Poll `f` every 50 ms until it returns `Some` or `limit` passes.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report_published(ws: &Workspace) -> (u64, u64) {
    let report = load_report(&ws.out());
    let t = &report.totals.totals.counters;
    (t.get(Counter::Published), t.get(Counter::Acked))
}

/// Without a browser: the page is self-contained, the state grows each second, unknown paths are
/// 404, and a page's event stream ends with a last point and a final view whose counts equal the
/// report's (in-process and with worker processes).
fn check_over_http(workers: Option<&str>) {
    let ws = Workspace::new();
    let name = common::unique("ui-http");
    let file = ws.file("ui.yaml", &scenario(&name, 4));
    let out = ws.out();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--no-progress",
        "--ui",
        "127.0.0.1:0",
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(w) = workers {
        args.extend(["--workers", w]);
    }
    let started = Instant::now();
    let mut child = spawn(&ws, &args);
    let addr = ui_address(&ws, &mut child);
    // One page's event stream, read to its end (the server closes it after the final view).
    let stream = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        })
    };

    let (head, page) = get(&addr, "/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains("<script>") && page.contains("new EventSource(\"/events\")"));
    for external in ["src=\"http", "href=\"http", "src='http", "@import", "<link"] {
        assert!(
            !page.contains(external),
            "the page loads something: {external}"
        );
    }
    assert!(get(&addr, "/nothing-here").0.starts_with("HTTP/1.1 404"));

    // The plan is there from the start; the published count grows between two reads.
    let first = poll(Duration::from_secs(20), || {
        let s = state(&addr);
        last_published(&s).filter(|&n| n > 0).map(|n| (s, n))
    })
    .expect("no point with publishes during the run");
    let meta = &first.0["meta"];
    assert_eq!(meta["scenario"], name.as_str());
    assert_eq!(meta["devices"], 60);
    assert_eq!(meta["phases"].as_array().unwrap().len(), 2);
    assert_eq!(meta["groups"].as_array().unwrap().len(), 2);
    let later = poll(Duration::from_secs(10), || {
        last_published(&state(&addr)).filter(|&n| n > first.1)
    });
    assert!(later.is_some(), "the published count did not change");

    // A page that connects late gets what it missed as one `history` event, from the first second.
    let mut late = TcpStream::connect(&addr).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    late.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    let history = poll(Duration::from_secs(10), || {
        let n = late.read(&mut buf).ok()?;
        got.push_str(&String::from_utf8_lossy(buf.get(..n)?));
        let rest = got.split("event: history\ndata: ").nth(1)?;
        let line = rest
            .split("\n\n")
            .next()
            .filter(|_| rest.contains("\n\n"))?;
        Some(serde_json::from_str::<Value>(line).unwrap())
    })
    .expect("no history event for a late page");
    let seconds: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["t_s"].as_u64().unwrap())
        .collect();
    assert!(seconds.len() >= 2, "{seconds:?}");
    assert_eq!(seconds[0], 1, "{seconds:?}");
    assert!(seconds.windows(2).all(|w| w[1] == w[0] + 1), "{seconds:?}");
    drop(late);

    let run = wait_within(&ws, &mut child, started, Duration::from_secs(90));
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let events = stream.join().unwrap();
    assert!(events.contains("text/event-stream"), "{events}");
    assert!(events.contains("event: meta\ndata: {"), "{events}");
    assert!(
        events.contains("\ndata: {\"t_s\":"),
        "one event per second: {events}"
    );
    // The stream ends with the final view, after the last point.
    let data = |line: &str| serde_json::from_str::<Value>(line).unwrap();
    let mut last_point = None;
    let mut last_groups = None;
    let mut final_view = None;
    let mut kind = String::new();
    for line in events.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            k.clone_into(&mut kind);
        } else if let Some(d) = line.strip_prefix("data: ") {
            match kind.as_str() {
                "final" => final_view = Some(data(d)),
                "groups" => last_groups = Some(data(d)),
                "history" => last_point = data(d).as_array().unwrap().last().cloned(),
                "" => last_point = Some(data(d)),
                _ => {}
            }
            kind.clear();
        }
    }
    let last_point = last_point.expect("no point in the stream");
    let final_view = final_view.expect("no final view in the stream");
    let report = load_report(&ws.out());
    let t = &report.totals.totals.counters;
    assert!(t.get(Counter::Published) > 0);
    for (k, c) in [
        ("published", Counter::Published),
        ("acked", Counter::Acked),
        ("received", Counter::Received),
    ] {
        assert_eq!(
            last_point["totals"][k],
            t.get(c),
            "{k}: last point {last_point}"
        );
        assert_eq!(final_view[k], t.get(c), "{k}: final view {final_view}");
    }
    assert_eq!(last_point["t_s"], report.series.last().unwrap().t_s);
    // The per-group tiles' last figures are each group's in the report.
    let slots: Vec<String> = serde_json::from_value(
        serde_json::from_str::<Value>(
            events
                .split("event: meta\ndata: ")
                .nth(1)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap()["group_slots"]
            .clone(),
    )
    .unwrap();
    let at = |name: &str| slots.iter().position(|s| s == name).unwrap();
    let last_groups = last_groups.expect("no groups event in the stream");
    let rows = last_groups.as_array().unwrap();
    assert_eq!(rows.len(), report.histograms.group_names.len());
    for (row, name) in rows.iter().zip(&report.histograms.group_names) {
        let g = &report.totals.groups[name];
        assert_eq!(
            row[at("published")],
            g.counters.get(Counter::Published),
            "{name}: {row}"
        );
        assert_eq!(
            row[at("acked")],
            g.counters.get(Counter::Acked),
            "{name}: {row}"
        );
        assert_eq!(
            row[at("received")],
            g.counters.get(Counter::Received),
            "{name}: {row}"
        );
        assert_eq!(
            row[at("disconnects")],
            g.counters.disconnects(),
            "{name}: {row}"
        );
    }
    assert_eq!(final_view["status"], "completed", "{final_view}");
    assert_eq!(final_view["verdicts"].as_array().unwrap().len(), 2);
    assert_eq!(final_view["gates_passed"], true);
    assert_eq!(final_view["groups"].as_array().unwrap().len(), 2);
}

#[test]
fn live_view_over_http_in_process() {
    check_over_http(None);
}

#[test]
fn live_view_over_http_with_worker_processes() {
    check_over_http(Some("2"));
}

/// A headless Chromium driven over the DevTools protocol on fds 3 and 4 (`--remote-debugging-pipe`).
struct Browser {
    child: Child,
    to: std::fs::File,
    from: std::io::BufReader<std::fs::File>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(chromium: &std::ffi::OsStr, url: &str) -> Browser {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let mut to_browser = [0i32; 2];
        let mut from_browser = [0i32; 2];
        // SAFETY: pipe(2) into two arrays of two fds.
        unsafe {
            assert_eq!(libc::pipe(to_browser.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(from_browser.as_mut_ptr()), 0);
        }
        let (child_read, child_write) = (to_browser[0], from_browser[1]);
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-pipe",
            "--window-size=1400,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2(2) calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_read, 3) < 0 || libc::dup2(child_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // SAFETY: closing the child's ends in this process, and owning ours from here on.
        let (to, from) = unsafe {
            libc::close(child_read);
            libc::close(child_write);
            (
                std::fs::File::from_raw_fd(to_browser[1]),
                std::fs::File::from_raw_fd(from_browser[0]),
            )
        };
        let mut b = Browser {
            child,
            to,
            from: std::io::BufReader::new(from),
            session: String::new(),
            next_id: 1,
            _profile: profile,
        };
        let targets = b.call(None, "Target.getTargets", serde_json::json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["targetId"]
            .clone();
        let attached = b.call(
            None,
            "Target.attachToTarget",
            serde_json::json!({"targetId": page, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        use std::io::BufRead;
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        loop {
            let mut frame = Vec::new();
            let n = self.from.read_until(0, &mut frame).unwrap();
            assert!(n > 0, "chromium closed the pipe");
            frame.pop();
            let v: Value = serde_json::from_slice(&frame).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate `expr` in the page; its value (JSON-serialisable).
    fn eval(&mut self, expr: &str) -> Value {
        let session = self.session.clone();
        let r = self.call(
            Some(&session),
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const READ: &str = "JSON.stringify({\
    t: document.getElementById('t').dataset.v,\
    connected: document.getElementById('connected').dataset.v,\
    published: document.getElementById('published').dataset.v,\
    acked: document.getElementById('acked').dataset.v,\
    e2e: document.getElementById('e2e-p99').dataset.v,\
    phase: document.getElementById('phase').textContent,\
    status: document.getElementById('status').textContent,\
    tiles: document.querySelectorAll('#groups .tile').length,\
    charts: document.querySelectorAll('canvas').length,\
    final_published: (document.getElementById('final-published') || {dataset: {}}).dataset.v || null,\
    verdicts: document.querySelectorAll('#verdicts li').length,\
    passed: document.querySelectorAll('#verdicts li.pass').length\
})";

fn read(b: &mut Browser) -> Value {
    serde_json::from_str(b.eval(READ).as_str().unwrap_or("{}")).unwrap()
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn live_view_in_headless_chromium_changes_and_ends_as_the_report() {
    let Some(chromium) = std::env::var_os("FLEETSTORM_CHROMIUM") else {
        println!("SKIPPED: FLEETSTORM_CHROMIUM not set");
        return;
    };
    let ws = Workspace::new();
    let name = common::unique("ui-chromium");
    let file = ws.file("ui.yaml", &scenario(&name, 6));
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--ui",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let addr = ui_address(&ws, &mut child);
    let mut browser = Browser::open(&chromium, &format!("http://{addr}/"));

    // Loaded and live: a first read with publishes, then a later one with more.
    let first = poll(Duration::from_secs(30), || {
        let v = read(&mut browser);
        (num(&v, "published") > 0).then_some(v)
    })
    .expect("the page never showed a publish");
    assert_eq!(first["tiles"], 2, "{first}");
    // The group tiles count too while the run goes on.
    let tile = poll(Duration::from_secs(10), || {
        let v =
            browser.eval("document.querySelector('#groups .tile .res').dataset.published || null");
        v.as_str()
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&n| n > 0)
    });
    assert!(
        tile.is_some(),
        "the first group tile shows no live publishes"
    );
    assert!(first["charts"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(num(&first, "connected"), 60, "{first}");
    assert!(
        first["status"] == "running" || first["status"] == "draining",
        "{first}"
    );
    let second = poll(Duration::from_secs(10), || {
        let v = read(&mut browser);
        (num(&v, "published") > num(&first, "published") && num(&v, "t") > num(&first, "t"))
            .then_some(v)
    });
    assert!(second.is_some(), "the numbers did not change: {first}");
    assert!(!second.unwrap()["e2e"].as_str().unwrap_or("").is_empty());

    // The run ends; the page keeps its last state and shows the outcome and verdicts.
    let run = wait_within(&ws, &mut child, started, Duration::from_secs(90));
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let end = poll(Duration::from_secs(10), || {
        let v = read(&mut browser);
        v["final_published"].is_string().then_some(v)
    })
    .expect("the page did not show the final result");
    let (published, acked) = report_published(&ws);
    assert_eq!(
        num(&end, "published"),
        published,
        "live count vs report: {end}"
    );
    assert_eq!(num(&end, "final_published"), published, "{end}");
    assert_eq!(num(&end, "acked"), acked, "{end}");
    assert_eq!(end["verdicts"], 2, "{end}");
    assert_eq!(end["passed"], 2, "{end}");
    assert!(
        end["status"].as_str().unwrap().starts_with("completed"),
        "{end}"
    );
    screenshot(&mut browser, "FLEETSTORM_SCREENSHOT");

    // The run's report.html, on a narrow screen: its group tables fit without scrolling sideways.
    let session = browser.session.clone();
    browser.call(
        Some(&session),
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 760, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    let html = std::fs::canonicalize(out.join("report.html")).unwrap();
    browser.call(
        Some(&session),
        "Page.navigate",
        serde_json::json!({"url": format!("file://{}", html.display())}),
    );
    let fit = poll(Duration::from_secs(20), || {
        let v = browser.eval(
            "document.readyState === 'complete' && location.protocol === 'file:' ? JSON.stringify({\
               tables: document.querySelectorAll('table.groups').length,\
               wide: [...document.querySelectorAll('.tablewrap')].filter(e => e.scrollWidth > e.clientWidth + 1).length,\
               overtime: [...document.querySelectorAll('figcaption')].filter(f => / latency over time$/.test(f.textContent)).length\
             }) : null",
        );
        v.as_str()
            .map(|t| serde_json::from_str::<Value>(t).unwrap())
    })
    .expect("report.html did not load");
    assert_eq!(fit["tables"], 3, "ramp, steady, whole run: {fit}");
    assert_eq!(
        fit["wide"], 0,
        "a group table scrolls sideways at 760 px: {fit}"
    );
    // e2e, puback and connect latency over the run.
    assert_eq!(fit["overtime"], 3, "{fit}");
    screenshot(&mut browser, "FLEETSTORM_REPORT_SCREENSHOT");
}

/// Save what the page shows as PNG when the environment variable `var` names a file.
fn screenshot(browser: &mut Browser, var: &str) {
    if let Some(shot) = std::env::var_os(var) {
        let session = browser.session.clone();
        let img = browser.call(
            Some(&session),
            "Page.captureScreenshot",
            serde_json::json!({"format": "png", "captureBeyondViewport": true}),
        );
        let bytes = base64_decode(img["data"].as_str().unwrap());
        std::fs::write(shot, bytes).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
