//! A capacity search watched while it runs: its `--prometheus` endpoint and its `--ui` live view
//! say which step runs now, at what load, and what the steps so far have shown; what they said must
//! be what search.json records afterwards. Embedded broker, a knee known exactly (an SLO on the
//! number of connect attempts, which is the number of devices).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    free_port, knee_scenario, knee_search, scrape, spawn, unique, wait_within, Workspace,
};
use serde_json::Value;

/// A gauge's value, when the exposition has it.
fn gauge(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("{name}{{");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The live view's `/state`, when it answers.
fn ui_state(port: u16) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

#[test]
fn prometheus_and_the_live_view_show_the_step_that_runs() {
    let ws = Workspace::new();
    let name = unique("search-live");
    let file = ws.file("s.yaml", &knee_scenario(&name));
    let out = ws.out();
    let prom = free_port();
    let ui = loop {
        let p = free_port();
        if p != prom {
            break p;
        }
    };
    let (prom_at, ui_at) = (format!("127.0.0.1:{prom}"), format!("127.0.0.1:{ui}"));
    let started = Instant::now();
    let args = knee_search(
        &file,
        "2s",
        &[
            "--no-progress",
            "--prometheus",
            &prom_at,
            "--ui",
            &ui_at,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let mut child = spawn(&ws, &args);
    // What the live views said, by step: (load, passing so far, failing so far) from Prometheus,
    // the context line and the run number from the live view.
    let mut scraped: BTreeMap<u64, (u64, Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut lines: BTreeSet<String> = BTreeSet::new();
    let mut runs: BTreeSet<u64> = BTreeSet::new();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        if let Some(text) = scrape(prom) {
            if let (Some(step), Some(load)) = (
                gauge(&text, "fleetstorm_search_step"),
                gauge(&text, "fleetstorm_search_load"),
            ) {
                let passing = gauge(&text, "fleetstorm_search_passing_load");
                let failing = gauge(&text, "fleetstorm_search_failing_load");
                assert!(text.contains("fleetstorm_devices_connected{"), "{text}");
                let seen = scraped.entry(step).or_insert((load, passing, failing));
                assert_eq!(
                    *seen,
                    (load, passing, failing),
                    "step {step} changed: {text}"
                );
            }
        }
        if let Some(state) = ui_state(ui) {
            if let Some(line) = state["meta"]["context"].as_str() {
                lines.insert(line.to_owned());
            }
            if let Some(run) = state["meta"]["run"].as_u64() {
                runs.insert(run);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = wait_within(&ws, &mut child, started, Duration::from_secs(150));
    assert_eq!(run.code(), Some(0), "{}", run.describe());

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(json["capacity"], 14, "{json:#}");
    // Every step lasts over 2.5 s and is scraped every 0.1 s: most steps are seen, never a wrong one.
    assert!(
        scraped.len() >= steps.len() / 2 && scraped.len() >= 2,
        "scraped steps {scraped:?} of {}",
        steps.len()
    );
    for (&step, &(load, passing, failing)) in &scraped {
        let i = usize::try_from(step).unwrap() - 1;
        assert_eq!(steps[i]["load"].as_u64(), Some(load), "step {step}");
        let before = &steps[..i];
        let best = |verdict: &str, pick: fn(u64, u64) -> u64| {
            before
                .iter()
                .filter(|s| s["verdict"] == verdict)
                .filter_map(|s| s["load"].as_u64())
                .reduce(pick)
        };
        assert_eq!(
            passing,
            best("pass", u64::max),
            "step {step}: passing so far"
        );
        assert_eq!(
            failing,
            best("fail", u64::min),
            "step {step}: failing so far"
        );
    }
    // The live view named the steps as search.json records them, one run each.
    let named: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("capacity search, step "))
        .collect();
    assert!(named.len() >= 2, "context lines seen: {lines:?}");
    for line in named {
        let n: usize = line["capacity search, step ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let s = &steps[n - 1];
        let expected = format!(
            "capacity search, step {n} ({}): {} devices",
            s["purpose"].as_str().unwrap(),
            s["load"]
        );
        assert!(line.starts_with(&expected), "{line:?} vs {expected:?}");
    }
    assert!(runs.len() >= 2, "the live view's run number: {runs:?}");
}
