//! What a newcomer reads: each command's `--help` with its own exit codes, `report --help` describing
//! its three commands, `validate` listing observers, thresholds and Sparkplug groups, shell
//! completions, the man page, the scenario JSON Schema (checked against every shipped scenario), and
//! the README's table of shipped scenarios naming every file in `scenarios/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::path::Path;

use common::fleetstorm;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let r = fleetstorm(&all);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    r.stdout
}

/// The exit codes listed in a help text: the leading numbers of the lines after `Exit codes`.
fn exit_codes(text: &str) -> Vec<u8> {
    let start = text
        .find("Exit codes")
        .unwrap_or_else(|| panic!("no exit codes in:\n{text}"));
    text[start..]
        .lines()
        .skip(1)
        .filter_map(|l| {
            let t = l.trim_start();
            let (n, rest) = t.split_once("  ")?;
            (l.starts_with("  ") && !rest.is_empty())
                .then(|| n.parse::<u8>().ok())
                .flatten()
        })
        .collect()
}

#[test]
fn each_command_prints_its_own_exit_codes() {
    let cases: [(&[&str], &[u8]); 9] = [
        (&["run"], &[0, 1, 2, 3]),
        (&["search"], &[0, 1, 2, 3]),
        (&["validate"], &[0, 2]),
        (&["doctor"], &[0, 2]),
        (&["preview"], &[0, 2]),
        (&["report", "merge"], &[0, 1, 2, 3]),
        (&["report", "render"], &[0, 1, 2, 3]),
        (&["report", "compare"], &[0, 1, 2]),
        (&["completions"], &[0, 2]),
    ];
    for (args, codes) in cases {
        let text = help(args);
        assert_eq!(exit_codes(&text), codes, "{args:?}:\n{text}");
    }
    // Only `run` describes a broker that cannot be reached.
    for args in [
        &["validate"][..],
        &["doctor"],
        &["preview"],
        &["report", "compare"],
    ] {
        let text = help(args);
        assert!(!text.contains("broker unreachable"), "{args:?}:\n{text}");
    }
}

#[test]
fn report_help_describes_merge_render_and_compare() {
    let text = help(&["report"]);
    assert!(!text.contains("merge shards.\n"), "{text}");
    for word in ["merge", "render", "compare", "gates"] {
        assert!(text.contains(word), "`{word}` missing:\n{text}");
    }
    let top = help(&[]);
    for cmd in ["completions", "man", "schema"] {
        assert!(top.contains(cmd), "`{cmd}` missing from --help:\n{top}");
    }
}

#[test]
fn validate_lists_observers_thresholds_and_sparkplug() {
    let ci = fleetstorm(&["validate", &format!("{ROOT}/scenarios/ci-smoke.yaml")]);
    assert_eq!(ci.code(), Some(0), "{}", ci.describe());
    let s =
        fleetstorm::scenario::load(Path::new(&format!("{ROOT}/scenarios/ci-smoke.yaml"))).unwrap();
    assert!(
        ci.stdout
            .contains(&format!("thresholds: {}", s.thresholds.len())),
        "{}",
        ci.stdout
    );
    for t in &s.thresholds {
        assert!(
            ci.stdout.contains(&format!("    {t}\n")),
            "{t}:\n{}",
            ci.stdout
        );
    }
    for o in &s.observers {
        assert!(
            ci.stdout.contains(&format!("observer {}:", o.name)),
            "{}",
            ci.stdout
        );
    }
    let sp = fleetstorm(&[
        "validate",
        &format!("{ROOT}/scenarios/sparkplug-plant.yaml"),
    ]);
    assert_eq!(sp.code(), Some(0), "{}", sp.describe());
    let s =
        fleetstorm::scenario::load(Path::new(&format!("{ROOT}/scenarios/sparkplug-plant.yaml")))
            .unwrap();
    for g in &s.groups {
        let id = g.sparkplug_group().unwrap();
        assert!(
            sp.stdout.contains(&format!(
                "Sparkplug B: each connection an edge node of group `{id}`"
            )),
            "{}",
            sp.stdout
        );
    }
    // A scenario without observers says so.
    let pc = fleetstorm(&["validate", &format!("{ROOT}/scenarios/plant-commands.yaml")]);
    assert!(pc.stdout.contains("observers: none"), "{}", pc.stdout);
}

#[test]
fn completions_and_man_page_print_to_stdout() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = fleetstorm(&["completions", shell]);
        assert_eq!(r.code(), Some(0), "{shell}: {}", r.describe());
        for word in ["fleetstorm", "merge", "render", "--threshold"] {
            assert!(r.stdout.contains(word), "{shell}: no `{word}`");
        }
    }
    let bad = fleetstorm(&["completions", "tcsh"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.describe());
    let man = fleetstorm(&["man"]);
    assert_eq!(man.code(), Some(0), "{}", man.describe());
    assert!(
        man.stdout.contains(".TH fleetstorm"),
        "{}",
        &man.stdout[..200]
    );
    for word in ["validate", "doctor", "report", "completions"] {
        assert!(man.stdout.contains(word), "man page lacks `{word}`");
    }
}

fn scenario_schema() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/scenarios/schema.json")).unwrap())
        .unwrap()
}

fn yaml_as_json(path: &Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_shipped_scenario_validates_against_the_schema() {
    let schema = scenario_schema();
    assert!(jsonschema::draft202012::meta::is_valid(&schema));
    let v = jsonschema::draft202012::new(&schema).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(format!("{ROOT}/scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let doc = yaml_as_json(&path);
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked += 1;
    }
    assert!(checked >= 8, "checked {checked} scenarios");
    // A misspelt key anywhere is refused, as `validate` refuses it; the same file spelt right passes.
    for (text, wrong, right) in [
        (
            "name: x\ngroups: [{ name: a, count: 1, profile: p, KEY: 1s }]\n",
            "intervall",
            "interval",
        ),
        (
            "name: x\nbroker: { KEY: 30s }\ngroups: []\n",
            "keepalive",
            "keep_alive",
        ),
        (
            "name: x\ngroups: []\nphases: [{ steady: { KEY: 1s } }]\n",
            "duraton",
            "duration",
        ),
    ] {
        let doc = |key: &str| -> serde_json::Value {
            serde_saphyr::from_str(&text.replace("KEY", key)).unwrap()
        };
        assert!(!v.is_valid(&doc(wrong)), "schema accepts `{wrong}`");
        assert!(v.is_valid(&doc(right)), "schema refuses `{right}`");
    }
}

#[test]
fn schema_command_prints_the_committed_schemas() {
    let r = fleetstorm(&["schema", "scenario"]);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    let committed = std::fs::read_to_string(format!("{ROOT}/scenarios/schema.json")).unwrap();
    assert_eq!(r.stdout, committed);
    let r = fleetstorm(&["schema", "report"]);
    let committed = std::fs::read_to_string(format!("{ROOT}/reports/schema.json")).unwrap();
    assert_eq!(r.stdout, committed);
    let r = fleetstorm(&["schema", "search"]);
    let committed = std::fs::read_to_string(format!("{ROOT}/reports/search.schema.json")).unwrap();
    assert_eq!(r.stdout, committed);
}

#[test]
fn readme_table_names_every_file_in_scenarios() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("The shipped scenarios"))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "no shipped-scenarios table in README.md");
    for entry in std::fs::read_dir(format!("{ROOT}/scenarios")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let link = format!("[`{name}`](scenarios/{name})");
        assert!(
            table
                .iter()
                .any(|row| row.starts_with(&format!("| {link} |"))),
            "README.md's shipped-scenarios table does not name scenarios/{name}"
        );
    }
}
