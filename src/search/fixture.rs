//! Steps and a small finished search for unit tests (of the search and of its writers). Test-only.
#![allow(clippy::unwrap_used)] // test fixtures may unwrap

use std::collections::BTreeMap;

use super::{
    Answer, Measures, Percentiles, Policy, Purpose, SearchResult, SloCheck, Step, Vary, Verdict,
    WindowLatency,
};
use crate::threshold::parse_threshold;

pub fn step(index: u32, load: u64, purpose: Purpose, verdict: Verdict, p99_ms: u64) -> Step {
    let p = Percentiles {
        count: 100,
        p50_us: 1000,
        p99_us: p99_ms * 1000,
        p99_9_us: p99_ms * 1500,
    };
    let mut latency = BTreeMap::new();
    latency.insert(
        "e2e".to_owned(),
        WindowLatency {
            corrected: p,
            uncorrected: p,
        },
    );
    let pass = verdict == Verdict::Pass;
    Step {
        index,
        load,
        purpose,
        intended_rate_per_s: load as f64,
        verdict,
        reasons: vec![format!("e2e.p99 < 50ms: {p99_ms} ms")],
        slos: vec![
            SloCheck {
                slo: "e2e.p99 < 50ms".into(),
                passed: pass,
                measured: Some(p99_ms as f64 * 1000.0),
                limit: 50_000.0,
                detail: format!("measured {p99_ms}ms, limit 50ms"),
            },
            SloCheck {
                slo: "loss_ratio == 0".into(),
                passed: true,
                measured: Some(0.0),
                limit: 0.0,
                detail: "measured 0".into(),
            },
        ],
        client_limited: false,
        measures: Some(Measures {
            duration_s: 10.0,
            published: load * 10,
            achieved_rate_per_s: load as f64,
            latency,
            loss_ratio: Some(0.0),
            lost: 0,
            overrun: 0,
            pushed_back: 0,
            skipped: 0,
            unsent_at_end: 0,
        }),
        report: None,
    }
}

/// 38,500 passes twice, 43,000 fails; `--require`, a baseline.
pub fn found(require: Option<u64>, baseline: Option<(&str, u64, f64)>) -> SearchResult {
    let slos = [
        parse_threshold("e2e.p99 < 50ms").unwrap(),
        parse_threshold("loss_ratio == 0").unwrap(),
    ];
    let mut cannot = step(3, 48_000, Purpose::Grow, Verdict::CannotJudge, 0);
    cannot.measures = None;
    cannot.slos.clear();
    cannot.reasons = vec!["the client machine was the limit".into()];
    let steps = vec![
        step(1, 20_000, Purpose::Grow, Verdict::Pass, 20),
        step(2, 40_000, Purpose::Grow, Verdict::Fail, 60),
        cannot,
        step(4, 38_500, Purpose::Bisect, Verdict::Pass, 41),
        step(5, 43_000, Purpose::Bisect, Verdict::Fail, 73),
        step(6, 38_500, Purpose::Confirm, Verdict::Pass, 40),
    ];
    SearchResult::new(
        "factory".into(),
        "mqtt://127.0.0.1:1883".into(),
        Vary::Devices,
        "at 1 msg/s each".into(),
        &slos,
        Policy::new(20_000, 80_000, 2.0, 0.12, 20).unwrap(),
        (5.0, 20.0),
        steps,
        Answer::Found {
            capacity: 38_500,
            first_failing: 40_000,
        },
    )
    .with_checks(require, baseline)
}
