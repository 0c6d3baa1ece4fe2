//! Messages a person can act on (issue 11, items 9-11), through the binary: a CONNACK refusal names
//! its code and meaning, protocol errors appear in the failure breakdown, secrets never appear in any
//! output, and no input makes the program panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;
mod fault;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{fleetstorm, unique, Finished, Workspace};
use fault::{ConnectReply, FaultBroker, Script};
use fleetstorm::metrics::Counter;
use fleetstorm::report::RunStatus;

/// A run or validate must end by its own exit code, never by a panic (exit 101).
fn assert_no_panic(run: &Finished) {
    assert_ne!(run.code(), Some(101), "panicked\n{}", run.describe());
    assert!(
        !run.stderr.contains("panicked"),
        "panicked\n{}",
        run.describe()
    );
}

#[test]
fn names_of_65536_characters_are_printed_not_panicked_on() {
    // `format!("{:<width$}")` panics on widths over 65,535: the plan description and the console
    // summary pad group and phase names to the longest one.
    let ws = Workspace::new();
    let group = "g".repeat(65_536);
    let phase = "p".repeat(65_536);
    let name = unique("long-names");
    let path = ws.file(
        "long.yaml",
        &format!(
            "name: {name}
broker:
  client_id: \"{name}-{{global_index}}\"
groups:
  - name: {group}
    count: 2
    profile: environment-sensor
    interval: 200ms
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - name: {phase}
    steady: {{ duration: 1s }}
  - name: {phase}x
    steady: {{ duration: 1s }}
"
        ),
    );
    let path = path.to_str().unwrap();
    let validate = fleetstorm(&["validate", path]);
    assert_no_panic(&validate);
    assert_eq!(validate.code(), Some(0), "{}", validate.describe());
    assert!(validate.stderr.contains(&group) || validate.stdout.contains(&group));

    let out = ws.out();
    let run = fleetstorm(&["run", path, "--out", out.to_str().unwrap(), "--no-progress"]);
    assert_no_panic(&run);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // The summary lists both phases by their full names.
    assert!(
        run.stdout.contains(&format!("{phase}x")),
        "{}",
        run.describe()
    );
}

/// Every file a run or a refused run left in `dir` (recursively), as text.
fn files_text(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// `secret` appears nowhere: not on stdout or stderr, not in any file the run wrote.
fn assert_secret_absent(secret: &str, run: &Finished, out: &std::path::Path) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret `{secret}` was printed\n{}",
        run.describe()
    );
    for (path, text) in files_text(out) {
        assert!(
            !text.contains(secret),
            "the secret `{secret}` is in {}",
            path.display()
        );
    }
}

#[test]
fn a_password_in_broker_is_masked_in_the_refusal() {
    let ws = Workspace::new();
    let secret = unique("Pw");
    let path = ws.file(
        "s.yaml",
        "name: x\ngroups:\n  - { name: a, count: 1, profile: environment-sensor }\n",
    );
    let out = ws.out();
    for url in [
        format!("mqtt://dev:{secret}@127.0.0.1:1883"),
        format!("mqtt://dev:{secret} x@127.0.0.1:1883"),
        format!("mqtt://dev:{secret}/x@127.0.0.1:1883"),
        format!("ws://dev:{secret}@127.0.0.1:1883"),
    ] {
        for command in ["run", "doctor"] {
            let mut args = vec![command, path.to_str().unwrap(), "--broker", &url];
            if command == "run" {
                args.extend(["--out", out.to_str().unwrap()]);
            }
            let run = fleetstorm(&args);
            assert_eq!(run.code(), Some(2), "{}", run.describe());
            assert_secret_absent(&secret, &run, &out);
            assert!(run.stderr.contains("--broker"), "{}", run.describe());
        }
    }
    // The refusal still names the URL, with the user and a mask where the password was.
    let run = fleetstorm(&[
        "run",
        path.to_str().unwrap(),
        "--broker",
        &format!("mqtt://dev:{secret}@127.0.0.1:1883"),
    ]);
    assert!(
        run.stderr.contains("mqtt://dev:****@127.0.0.1:1883"),
        "{}",
        run.describe()
    );
}

#[test]
fn scenario_errors_never_show_a_password() {
    let ws = Workspace::new();
    let secret = unique("Pw");
    // Each: a broker section whose error points at (or near) the secret.
    let cases = [
        format!("broker:\n  password: \"{secret}\"\n"),
        format!("broker:\n  username: u\n  pasword: {secret}\n"),
        format!("broker:\n  username: u\n  password: [{secret}]\n"),
        format!("broker:\n  username: u\n  password:\n    - {secret}\n"),
        format!("broker:\n  username: u\n  password: \"{secret}\n"),
        format!("broker: {{ username: u, password: '{secret}', url: 3 }}\n"),
        format!("broker: {{ password: \"{secret}\" }}\n"),
        format!("broker:\n  url: \"mqtt://u:{secret}@127.0.0.1:1883\"\n"),
        format!("broker:\n  urls: [\"mqtt://u:{secret}@127.0.0.1:1883\"]\n"),
    ];
    let out = ws.out();
    for (i, broker) in cases.iter().enumerate() {
        let path = ws.file(
            &format!("s{i}.yaml"),
            &format!(
                "name: x\n{broker}groups:\n  - {{ name: a, count: 1, profile: environment-sensor }}\n"
            ),
        );
        for command in ["validate", "run"] {
            let mut args = vec![command, path.to_str().unwrap()];
            if command == "run" {
                args.extend(["--out", out.to_str().unwrap()]);
            }
            let run = fleetstorm(&args);
            assert_eq!(run.code(), Some(2), "case {i}\n{}", run.describe());
            assert_secret_absent(&secret, &run, &out);
            // Still a located error: file and line.
            assert!(
                run.stderr.contains(&format!("s{i}.yaml:")),
                "case {i}\n{}",
                run.describe()
            );
        }
    }
}

/// A scenario of `devices` devices against `url`, `protocol` "3.1.1" or 5, with optional credentials
/// and a threshold (so `junit.xml` is written too).
fn scenario(ws: &Workspace, url: &str, protocol: &str, login: Option<(&str, &str)>) -> PathBuf {
    let name = unique("msg");
    let login = login.map_or(String::new(), |(u, p)| {
        format!("  username: \"{u}\"\n  password: \"{p}\"\n")
    });
    ws.file(
        "scenario.yaml",
        &format!(
            "name: {name}
broker:
  url: {url}
  protocol: {protocol}
  connect_timeout: 2s
  client_id: \"{name}-{{index}}\"
{login}groups:
  - name: dev
    count: 5
    profile: energy-meter
    interval: 200ms
    qos: 1
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - ramp: {{ connect_rate: 100/s }}
  - steady: {{ duration: 3s }}
thresholds:
  - \"publish_failed == 0\"
"
        ),
    )
}

/// `fleetstorm run` of `path` into `ws.out()`.
fn run(ws: &Workspace, path: &Path) -> Finished {
    let out = ws.out();
    fleetstorm(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ])
}

/// The exit-3 contract of a run that could not connect: exit 3, `broker_unreachable`, and the
/// message (on stderr and in report.json) naming `expected` and the scenario file's path.
fn assert_unreachable_saying(ws: &Workspace, path: &Path, run: &Finished, expected: &[&str]) {
    assert_no_panic(run);
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    let report = common::load_report(&ws.out());
    assert_eq!(
        report.outcome.status,
        RunStatus::BrokerUnreachable,
        "{}",
        run.describe()
    );
    for e in expected {
        assert!(
            report.outcome.message.contains(e),
            "report message `{}` should say `{e}`",
            report.outcome.message
        );
        assert!(
            run.stderr.contains(e),
            "stderr should say `{e}`\n{}",
            run.describe()
        );
    }
    assert!(
        run.stderr.contains(&path.display().to_string()),
        "the hint should name the scenario file {}\n{}",
        path.display(),
        run.describe()
    );
}

#[test]
fn a_connack_refusal_names_its_code_and_meaning_for_each_protocol() {
    for (protocol, code, meaning) in [
        ("\"3.1.1\"", 4, "0x04 bad user name or password"),
        ("\"3.1.1\"", 5, "0x05 not authorized"),
        ("5", 0x86, "0x86 Bad User Name or Password"),
        ("5", 0x87, "0x87 Not authorized"),
        ("5", 0x9F, "0x9f Connection rate exceeded"),
    ] {
        let broker = FaultBroker::start(Script::new().connect_reply(ConnectReply::Refuse(code)));
        let ws = Workspace::new();
        let path = scenario(&ws, &broker.url(), protocol, None);
        let run = run(&ws, &path);
        assert_unreachable_saying(&ws, &path, &run, &["refused by CONNACK", meaning]);
        let report = common::load_report(&ws.out());
        let c = &report.totals.totals.counters;
        assert!(
            c.get(Counter::ConnectFailRejected) > 0,
            "{}",
            run.describe()
        );
        assert_eq!(c.get(Counter::ConnectFailRejected), c.connect_failures());
        // The console summary lists the reason.
        assert!(run.stdout.contains("rejected"), "{}", run.describe());
    }
}

#[test]
fn a_reply_that_is_not_mqtt_is_a_protocol_error_in_the_breakdown() {
    for garbage in [
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        // A CONNACK header whose remaining length never ends (malformed length).
        vec![0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        // A CONNACK cut short, then the connection closes.
        vec![0x20, 2, 0],
    ] {
        let broker =
            FaultBroker::start(Script::new().connect_reply(ConnectReply::Garbage(garbage.clone())));
        let ws = Workspace::new();
        let path = scenario(&ws, &broker.url(), "\"3.1.1\"", None);
        let run = run(&ws, &path);
        assert_unreachable_saying(
            &ws,
            &path,
            &run,
            &["protocol errors", "not valid MQTT 3.1.1"],
        );
        let report = common::load_report(&ws.out());
        let c = &report.totals.totals.counters;
        assert!(
            c.get(Counter::ConnectFailProtocol) > 0,
            "{garbage:?}\n{}",
            run.describe()
        );
        assert_eq!(
            c.get(Counter::ConnectFailProtocol),
            c.connect_failures(),
            "{garbage:?}\n{}",
            run.describe()
        );
        assert!(run.stdout.contains("  protocol"), "{}", run.describe());
    }
}

#[test]
fn malformed_packets_after_connack_are_counted_as_protocol_disconnects() {
    // A PUBLISH header with a malformed remaining length, right after a successful CONNACK.
    let broker =
        FaultBroker::start(Script::new().after_connack(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
    let ws = Workspace::new();
    let path = scenario(&ws, &broker.url(), "\"3.1.1\"", None);
    let run = run(&ws, &path);
    assert_no_panic(&run);
    let report = common::load_report(&ws.out());
    let c = &report.totals.totals.counters;
    assert!(c.get(Counter::ConnectSuccesses) > 0, "{}", run.describe());
    assert!(c.get(Counter::DisconnectProtocol) > 0, "{}", run.describe());
    // The console's disconnect breakdown names it.
    let disconnects = run.stdout.split("disconnects").nth(1).unwrap_or_default();
    assert!(disconnects.contains("protocol"), "{}", run.describe());
}

/// A mosquitto of this test's own, requiring a password; stopped (by its PID) on drop.
struct SecureMosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SecureMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(name: &str, dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(dirs.iter().copied())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Start mosquitto with `allow_anonymous false` and one account `user`/`password`, on a free port in
/// 65350-65399; `None` (after saying so) when mosquitto or mosquitto_passwd is not installed.
fn secure_mosquitto(user: &str, password: &str) -> Option<SecureMosquitto> {
    let dirs = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];
    let (Some(mosquitto), Some(passwd)) = (
        find_program("mosquitto", &dirs),
        find_program("mosquitto_passwd", &dirs),
    ) else {
        eprintln!("SKIPPED: mosquitto or mosquitto_passwd not installed (CI installs them)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("passwords");
    let status = Command::new(passwd)
        .args(["-c", "-b"])
        .arg(&pwfile)
        .args([user, password])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_passwd failed");
    let seed = std::process::id() as u16
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u16);
    for attempt in 0..10u16 {
        let port = 65350 + (seed.wrapping_add(attempt * 7)) % 50;
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            continue;
        }
        let conf = dir.path().join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nset_tcp_nodelay true\nlog_dest none\n",
                pwfile.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(&mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = fault::poll_until(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if up && matches!(child.try_wait(), Ok(None)) {
            return Some(SecureMosquitto {
                child,
                port,
                _dir: dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start mosquitto on a free port in 65350-65399");
}

#[test]
fn mosquitto_refusals_say_not_authorized_and_a_good_login_leaks_nothing() {
    let secret = unique("Secret");
    let Some(m) = secure_mosquitto("fleet", &secret) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let wrong = unique("Wrong");
    for (protocol, meaning) in [
        ("\"3.1.1\"", "0x05 not authorized"),
        ("5", "0x87 Not authorized"),
    ] {
        // No credentials, then a wrong password: mosquitto refuses both as not authorized.
        for login in [None, Some(("fleet", wrong.as_str()))] {
            let ws = Workspace::new();
            let path = scenario(&ws, &url, protocol, login);
            let run = run(&ws, &path);
            assert_unreachable_saying(
                &ws,
                &path,
                &run,
                &["refused by CONNACK", meaning, "broker.password"],
            );
            assert_secret_absent(&wrong, &run, &ws.out());
        }
        // The right password: the run completes, and the password is in no output.
        let ws = Workspace::new();
        let path = scenario(&ws, &url, protocol, Some(("fleet", &secret)));
        let run = run(&ws, &path);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        let names: Vec<String> = files_text(&ws.out())
            .iter()
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for expected in ["report.json", "summary.md", "report.html", "junit.xml"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing: {names:?}"
            );
        }
        assert_secret_absent(&secret, &run, &ws.out());
        // The resolved scenario in report.json names the user and omits the password.
        let report = common::load_report(&ws.out());
        assert_eq!(report.scenario["broker"]["username"], "fleet");
        assert!(report.scenario["broker"].get("password").is_none());
    }
}

#[test]
fn an_observer_refused_by_connack_says_the_code_and_meaning() {
    let broker = FaultBroker::start(Script::new().connect_reply(ConnectReply::Refuse(5)));
    let ws = Workspace::new();
    let path = scenario(&ws, &broker.url(), "\"3.1.1\"", None);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("phases:", "observers:\n  - name: audit\nphases:");
    std::fs::write(&path, text).unwrap();
    let run = run(&ws, &path);
    assert_unreachable_saying(
        &ws,
        &path,
        &run,
        &["observers could not start", "0x05 not authorized"],
    );
}

#[test]
fn a_plan_that_does_not_fit_points_doctor_at_the_file_the_user_named() {
    // More connections than one source address has ports: refused before connecting, with the
    // `doctor` command for this very file and flags (quoted, since the path has a space).
    let ws = Workspace::new();
    let dir = ws.path().join("my plans");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.yaml");
    std::fs::write(
        &path,
        format!(
            "name: {}\ngroups:\n  - {{ name: a, count: 1, profile: environment-sensor }}\n",
            unique("fit")
        ),
    )
    .unwrap();
    let run = fleetstorm(&[
        "run",
        path.to_str().unwrap(),
        "--devices",
        "900000",
        "--workers",
        "1",
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    let expected = format!(
        "`fleetstorm doctor '{}' --devices 900000 --workers 1` shows every limit",
        path.display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.describe());
}

#[test]
fn a_completed_run_with_a_password_writes_it_nowhere() {
    // The fault broker accepts any login: every writer runs (a threshold makes junit.xml too).
    let broker = FaultBroker::start(Script::new());
    let secret = unique("Secret");
    for protocol in ["\"3.1.1\"", "5"] {
        let ws = Workspace::new();
        let path = scenario(&ws, &broker.url(), protocol, Some(("fleet", &secret)));
        let run = run(&ws, &path);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        let names: Vec<String> = files_text(&ws.out())
            .iter()
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for expected in ["report.json", "summary.md", "report.html", "junit.xml"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing: {names:?}"
            );
        }
        assert_secret_absent(&secret, &run, &ws.out());
        // Re-rendering the report (every format) does not bring it back either.
        for format in ["console", "md", "html", "junit", "json"] {
            let out = ws.path().join(format!("render-{format}"));
            let render = fleetstorm(&[
                "report",
                "render",
                ws.out().to_str().unwrap(),
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(render.code(), Some(0), "{}", render.describe());
            assert_secret_absent(&secret, &render, &out);
        }
    }
}

#[test]
fn hostile_command_line_values_are_refused_not_panicked_on() {
    let ws = Workspace::new();
    let path = ws.file(
        "s.yaml",
        &format!(
            "name: {}\ngroups:\n  - {{ name: a, count: 1, profile: environment-sensor }}\n",
            unique("cli")
        ),
    );
    let path = path.to_str().unwrap();
    let out = ws.out();
    let out = out.to_str().unwrap();
    for extra in [
        // A shared start at the end of time overflowed the schedule (exit 101).
        &["--start-at-us", "18446744073709551615"][..],
        &["--duration", "18446744073709551615s"],
        &["--devices", "18446744073709551615"],
        &["--shard", "18446744073709551615/18446744073709551615"],
        &["--workers", "0"],
    ] {
        let mut args = vec!["run", path, "--out", out, "--no-progress"];
        args.extend_from_slice(extra);
        let run = fleetstorm(&args);
        assert_no_panic(&run);
        assert_eq!(run.code(), Some(2), "{extra:?}\n{}", run.describe());
        assert!(
            run.stderr.contains(extra[0]),
            "{extra:?}\n{}",
            run.describe()
        );
    }
}
