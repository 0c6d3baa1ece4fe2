//! report.json validates against the committed `reports/schema.json`, and the schema stays strict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use fleetstorm::metrics::{Counter, Metric};
use fleetstorm::report::{json, Report};
use report_fixture::{record_with_phases, sample, unreachable};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/reports/schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).unwrap()
}

fn as_json(report: &Report) -> Value {
    serde_json::from_str(&json::render(report).unwrap()).unwrap()
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn schema_is_valid_draft_2020_12() {
    assert!(jsonschema::draft202012::meta::is_valid(&schema()));
}

#[test]
fn report_json_validates_against_schema() {
    let v = validator();
    for record in [
        sample(),
        unreachable(),
        record_with_phases(&["ramp", "steady-1", "steady-2", "cooldown"]),
    ] {
        let instance = as_json(&Report::build(&record).unwrap());
        assert_eq!(errors(&v, &instance), Vec::<String>::new());
    }
    let mut no_phase = unreachable();
    no_phase.snapshot.phases.clear();
    let instance = as_json(&Report::build(&no_phase).unwrap());
    assert_eq!(errors(&v, &instance), Vec::<String>::new());
}

#[test]
fn schema_names_every_counter_and_metric() {
    let s = schema();
    let counters = s["$defs"]["counters"]["properties"].as_object().unwrap();
    let mut listed: Vec<&str> = counters.keys().map(String::as_str).collect();
    let mut known: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
    listed.sort_unstable();
    known.sort_unstable();
    assert_eq!(listed, known, "update reports/schema.json $defs.counters");
    let metrics: Vec<&str> = s["$defs"]["metric"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(metrics, known, "update reports/schema.json $defs.metric");
}

#[test]
fn schema_rejects_incomplete_or_unknown_shapes() {
    let v = validator();
    let good = as_json(&Report::build(&sample()).unwrap());

    let mut missing = good.clone();
    missing["phases"][1]["totals"]["latency"]["puback"]["corrected"]
        .as_object_mut()
        .unwrap()
        .remove("p99_us");
    assert!(!v.is_valid(&missing), "a latency object without p99_us");

    let mut extra = good.clone();
    extra["summary"]["p99"] = Value::from(3);
    assert!(!v.is_valid(&extra), "an unknown summary key");

    let mut metric = good.clone();
    let l = metric["totals"]["totals"]["latency"]["puback"].clone();
    metric["totals"]["totals"]["latency"]["latency"] = l;
    assert!(!v.is_valid(&metric), "an unknown metric");

    let mut version = good;
    version["schema_version"] = Value::from(2);
    assert!(!v.is_valid(&version), "another schema version");
}
