//! Property-based tests: no input makes the parsers panic, and what they accept behaves.
//!
//! Over the scenario loader (YAML-ish text, and structured mutations of every shipped scenario), the
//! MQTT codec's parser (arbitrary bytes, and cut or completed frames), `read_stamp` (arbitrary bytes,
//! and stamps it must read back exactly), the threshold grammar (arbitrary text, and assembled
//! thresholds that must print back to themselves), and snapshot merge (commutative and associative).
//! Case counts stay modest (see `config`) so the suite stays fast on two cores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use clap::Parser as _;
use proptest::prelude::*;

use fleetstorm::error::Exit;
use fleetstorm::gate::parse_threshold;
use fleetstorm::metrics::histogram::{new_histogram, record};
use fleetstorm::metrics::{Basis, Counter, Metric, RunSnapshot};
use fleetstorm::mqtt::codec::{self, MAX_INCOMING_PACKET};
use fleetstorm::scenario::{self, MqttVersion, ScenarioError};
use fleetstorm::telemetry::read_stamp;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a failure is worth a little time, not minutes.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario loader

/// Every scenario file shipped in `scenarios/`: valid starting points for mutations.
fn shipped() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Loading `text` never panics, and a refusal is a located error: it names the file, and a line it
/// gives exists in the text (or is the line just after it, for an error at the end). What loads also
/// goes through `fleetstorm validate` (plan, timeline, the printed description) without a panic.
fn check_load(text: &str) -> Result<(), TestCaseError> {
    const FILE: &str = "fuzz.yaml";
    match scenario::parse(text, FILE) {
        Ok(_) => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE);
            std::fs::write(&path, text).unwrap();
            let cli = fleetstorm::cli::Cli::parse_from([
                "fleetstorm".as_ref(),
                "validate".as_ref(),
                path.as_os_str(),
            ]);
            prop_assert_eq!(fleetstorm::app::main(cli), Exit::Success);
        }
        Err(e) => {
            prop_assert_eq!(e.file(), Some(FILE));
            if let Some(line) = e.line() {
                prop_assert!(
                    line >= 1 && line <= text.lines().count() + 1,
                    "line {line}: {e}"
                );
            }
            let shown = e.to_string();
            prop_assert!(shown.starts_with(FILE), "{}", shown);
            let is_override = matches!(e, ScenarioError::Override { .. });
            prop_assert!(!is_override, "an override error from a file: {}", shown);
        }
    }
    Ok(())
}

/// One edit of a scenario, at a position chosen by the index.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace what follows the first `:` on the line.
    ReplaceValue(usize, String),
    InsertLine(usize, String),
    /// Add or remove indentation.
    Indent(usize, i8),
    /// Cut the text at a character.
    Truncate(usize),
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("~".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("1e308".to_owned()),
        Just("NaN".to_owned()),
        Just("\"\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("[1, [2, [3]]]".to_owned()),
        Just("0ms".to_owned()),
        Just("1/s".to_owned()),
        Just("18446744073709551616s".to_owned()),
        Just("\"{group}{index}{unknown}\"".to_owned()),
        Just("*anchor".to_owned()),
        Just("&a [*a]".to_owned()),
        Just("'\\u0000'".to_owned()),
        "[ -~]{0,24}",
        "\\PC{0,12}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0..200usize;
    prop_oneof![
        at.clone().prop_map(Edit::DeleteLine),
        at.clone().prop_map(Edit::DuplicateLine),
        (at.clone(), at.clone()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (at.clone(), value()).prop_map(|(a, v)| Edit::ReplaceValue(a, v)),
        (at.clone(), "[ -~]{0,30}").prop_map(|(a, l)| Edit::InsertLine(a, l)),
        (at.clone(), -4i8..=4).prop_map(|(a, d)| Edit::Indent(a, d)),
        (0..20_000usize).prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match edit {
        Edit::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
        Edit::ReplaceValue(i, v) => {
            let l = &mut lines[i % n];
            if let Some(colon) = l.find(':') {
                l.truncate(colon + 1);
                l.push(' ');
                l.push_str(v);
            }
        }
        Edit::InsertLine(i, l) => lines.insert(i % (n + 1), l.clone()),
        Edit::Indent(i, d) => {
            let l = &mut lines[i % n];
            if *d > 0 {
                l.insert_str(0, &" ".repeat(*d as usize));
            } else {
                let strip = l.len() - l.trim_start_matches(' ').len();
                l.drain(..strip.min(d.unsigned_abs() as usize));
            }
        }
        Edit::Truncate(at) => {
            let joined = lines.join("\n");
            let cut = joined
                .char_indices()
                .map(|(i, _)| i)
                .nth(*at % joined.chars().count().max(1))
                .unwrap_or(joined.len());
            return joined[..cut].to_owned();
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_loader_never_panics_on_yaml_ish_text(text in "([a-z_]{0,8}: ?[ -~]{0,12}\n {0,4}(- )?){0,12}") {
        check_load(&text)?;
    }

    #[test]
    fn the_loader_never_panics_on_any_text(text in "\\PC{0,200}") {
        check_load(&text)?;
    }

    #[test]
    fn mutated_scenarios_load_or_fail_with_a_located_error(
        which in 0..64usize,
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let files = shipped();
        let mut text = files[which % files.len()].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check_load(&text)?;
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT codec

/// A remaining-length field for `len`.
fn varint(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

fn versions() -> [MqttVersion; 2] {
    [MqttVersion::V311, MqttVersion::V5]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_packet_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for v in versions() {
            if let Ok(Some((_, used))) = codec::parse(&bytes, v) {
                prop_assert!((2..=bytes.len()).contains(&used));
            }
        }
    }

    #[test]
    fn a_complete_frame_is_parsed_or_refused_and_a_cut_one_waits(
        first in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = vec![first];
        frame.extend(varint(body.len()));
        frame.extend(&body);
        for v in versions() {
            match codec::parse(&frame, v) {
                Ok(Some((_, used))) => prop_assert_eq!(used, frame.len()),
                Ok(None) => prop_assert!(false, "a complete frame must not wait for more"),
                Err(_) => {}
            }
            // A strict prefix never yields a packet.
            let prefix = &frame[..cut.index(frame.len())];
            prop_assert!(!matches!(codec::parse(prefix, v), Ok(Some(_))));
        }
    }

    #[test]
    fn a_huge_declared_length_is_refused_not_awaited(extra in 1usize..1_000_000, first in any::<u8>()) {
        let mut frame = vec![first];
        frame.extend(varint(MAX_INCOMING_PACKET + extra));
        for v in versions() {
            prop_assert!(codec::parse(&frame, v).is_err());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// read_stamp

fn stamp(device: &str, seq: u64, ts: u64, sent: Option<u64>, tail: &str) -> String {
    let mut s = format!("{{\"device\":\"{device}\",\"seq\":{seq},\"ts_us\":{ts}");
    if let Some(sent) = sent {
        s.push_str(&format!(",\"sent_us\":{sent}"));
    }
    s.push_str(tail);
    s.push('}');
    s
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn read_stamp_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_stamp(&bytes);
    }

    #[test]
    fn read_stamp_never_panics_near_the_format(
        device in "[^\"\\\\]{0,12}",
        seq in any::<u64>(),
        ts in any::<u64>(),
        noise in prop::collection::vec(any::<u8>(), 0..40),
        at in any::<prop::sample::Index>(),
    ) {
        let mut bytes = stamp(&device, seq, ts, None, "").into_bytes();
        let i = at.index(bytes.len());
        bytes.splice(i..i, noise);
        let _ = read_stamp(&bytes);
    }

    #[test]
    fn read_stamp_reads_back_what_was_written(
        device in "[^\"\\\\]{0,24}",
        seq in any::<u64>(),
        ts in any::<u64>(),
        sent in proptest::option::of(any::<u64>()),
        extra in prop_oneof![
            Just(String::new()),
            Just(",\"t\":[1,{\"a\":\"}\"}]".to_owned()),
            Just(",\"v\":21.5".to_owned()),
        ],
        cut in any::<prop::sample::Index>(),
    ) {
        let text = stamp(&device, seq, ts, sent, &extra);
        let s = read_stamp(text.as_bytes());
        let s = s.expect("a stamp we wrote reads back");
        prop_assert_eq!(s.device_id, device.as_str());
        prop_assert_eq!(s.seq, seq);
        prop_assert_eq!(s.intended_at_us, ts);
        prop_assert_eq!(s.sent_at_us, sent.unwrap_or(ts));
        // Truncated anywhere, it is refused.
        let short = &text.as_bytes()[..cut.index(text.len())];
        prop_assert!(read_stamp(short).is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Threshold grammar

fn quantity() -> impl Strategy<Value = String> {
    const METRICS: [&str; 6] = [
        "connect",
        "puback",
        "pubcomp",
        "suback",
        "e2e",
        "command_rtt",
    ];
    const STATS: [&str; 7] = ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"];
    prop_oneof![
        (
            prop::sample::select(&METRICS[..]),
            prop::sample::select(&STATS[..])
        )
            .prop_map(|(m, s)| format!("{m}.{s}")),
        prop::sample::select(
            &[
                "loss_ratio",
                "publish_rate",
                "ack_rate",
                "connect_failures",
                "disconnects",
                "lost"
            ][..]
        )
        .prop_map(str::to_owned),
        prop::sample::select(Counter::ALL).prop_map(|c| c.name().to_owned()),
        "[a-z_.]{1,12}",
    ]
}

fn threshold_text() -> impl Strategy<Value = String> {
    let scope = prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9_-]{0,8}:",
        "group=[a-z][a-z0-9]{0,6}:",
        "[a-z]{1,6}/group=[a-z]{1,6}:",
        "[ -~]{0,6}:",
    ];
    let op = prop::sample::select(&["<", "<=", ">", ">=", "==", "=", "!=", "=<"][..]);
    let number = prop_oneof![
        (0u64..1_000_000).prop_map(|n| n.to_string()),
        (0u64..10_000, 0u64..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        "[0-9.]{0,8}",
    ];
    let unit = prop::sample::select(&["", "us", "µs", "ms", "s", "/s", "%", "m", "x"][..]);
    (scope, quantity(), op, number, unit, " {0,2}")
        .prop_map(|(s, q, o, n, u, pad)| format!("{pad}{s}{q}{pad}{o}{pad}{n}{u}{pad}"))
}

/// Thresholds built to be valid: each quantity with a value of its own kind.
fn valid_threshold_text() -> impl Strategy<Value = String> {
    const METRICS: [&str; 6] = [
        "connect",
        "puback",
        "pubcomp",
        "suback",
        "e2e",
        "command_rtt",
    ];
    const STATS: [&str; 7] = ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"];
    let scope = prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9_-]{0,8}:",
        "group=[a-z][a-z0-9]{0,6}:",
        "[a-z]{1,6}/group=[a-z]{1,6}:",
    ];
    let op = prop::sample::select(&["<", "<=", ">", ">=", "=="][..]);
    let body = prop_oneof![
        (
            prop::sample::select(&METRICS[..]),
            prop::sample::select(&STATS[..]),
            0u64..100_000,
            0u64..1000,
            prop::sample::select(&["us", "µs", "ms", "s"][..]),
        )
            .prop_map(|(m, st, a, b, u)| (format!("{m}.{st}"), format!("{a}.{b}{u}"))),
        (
            prop::sample::select(&["publish_rate", "ack_rate"][..]),
            0u64..1_000_000,
            any::<bool>()
        )
            .prop_map(|(q, n, per)| (q.to_owned(), format!("{n}{}", if per { "/s" } else { "" }))),
        (0u64..=1000, any::<bool>()).prop_map(|(n, pct)| (
            "loss_ratio".to_owned(),
            if pct {
                format!("{}%", n / 10)
            } else {
                format!("0.{n:03}")
            }
        )),
        (prop::sample::select(Counter::ALL), 0u64..1_000_000)
            .prop_map(|(c, n)| (c.name().to_owned(), n.to_string())),
    ];
    (scope, body, op).prop_map(|(s, (q, v), o)| format!("{s}{q} {o} {v}"))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_thresholds_parse_and_print_back_to_themselves(text in valid_threshold_text()) {
        let t = parse_threshold(&text);
        prop_assert!(t.is_ok(), "`{}` refused: {:?}", text, t);
        let t = t.unwrap();
        let printed = t.to_string();
        prop_assert_eq!(parse_threshold(&printed), Ok(t), "`{}` printed as `{}`", text, printed);
    }

    #[test]
    fn the_threshold_parser_never_panics(text in "\\PC{0,60}") {
        if let Err(e) = parse_threshold(&text) {
            prop_assert!(!e.message.is_empty() && !e.hint.is_empty());
        }
    }

    #[test]
    fn accepted_thresholds_print_back_to_themselves(text in threshold_text()) {
        match parse_threshold(&text) {
            Ok(t) => {
                let printed = t.to_string();
                let again = parse_threshold(&printed);
                prop_assert_eq!(again.as_ref(), Ok(&t), "`{}` printed as `{}`", text, printed);
            }
            Err(e) => prop_assert!(!e.message.is_empty() && !e.hint.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot merge

const GROUPS: usize = 2;
const PHASES: usize = 2;

/// One cell's content: a few counters and a few latencies of a few metrics.
type Cell = (Vec<(usize, u32)>, Vec<(usize, usize, u64)>);

fn cell() -> impl Strategy<Value = Cell> {
    (
        prop::collection::vec((0..Counter::COUNT, any::<u32>()), 0..4),
        prop::collection::vec((0..Metric::COUNT, 0..2usize, 1u64..3_600_000_000), 0..6),
    )
}

fn snapshot() -> impl Strategy<Value = (Vec<Cell>, [u64; 4])> {
    (
        prop::collection::vec(cell(), PHASES * GROUPS),
        [0u64..1000, 1000u64..2000, 0u64..1000, 1000u64..2000],
    )
}

fn build((cells, times): &(Vec<Cell>, [u64; 4])) -> RunSnapshot {
    let mut s = RunSnapshot::empty(
        &[
            ("ramp".into(), times[0], times[1]),
            ("steady".into(), times[2] + 2000, times[3] + 2000),
        ],
        (0..GROUPS).map(|g| format!("g{g}")).collect(),
    );
    for (i, (counters, latencies)) in cells.iter().enumerate() {
        let g = &mut s.phases[i / GROUPS].groups[i % GROUPS];
        for &(c, n) in counters {
            g.counters.add(Counter::ALL[c], u64::from(n));
        }
        for &(m, b, v) in latencies {
            let key = (Metric::ALL[m], Basis::ALL[b]);
            let h = g
                .histograms
                .entry(key)
                .or_insert_with(|| new_histogram().unwrap());
            record(h, v);
        }
    }
    s
}

fn merged(a: &RunSnapshot, b: &RunSnapshot) -> RunSnapshot {
    let mut out = a.clone();
    out.merge(b).unwrap();
    out
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn merge_is_commutative(a in snapshot(), b in snapshot()) {
        let (a, b) = (build(&a), build(&b));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in snapshot(), b in snapshot(), c in snapshot()) {
        let (a, b, c) = (build(&a), build(&b), build(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merging_an_empty_snapshot_changes_nothing(a in snapshot()) {
        let a = build(&a);
        let empty = RunSnapshot::empty(
            &a.phases.iter().map(|p| (p.name.clone(), p.start_us, p.end_us)).collect::<Vec<_>>(),
            a.group_names.clone(),
        );
        prop_assert_eq!(merged(&a, &empty), a.clone());
    }
}
