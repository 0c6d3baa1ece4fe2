//! Validation: raw YAML types → typed [`Scenario`], with a located error for every refusal.

use std::collections::HashSet;
use std::time::Duration;

use crate::scenario::broker::default_broker;
use crate::scenario::context::{
    loc, Validator, DEFAULT_CONNECT_RATE, DEFAULT_MAX_INFLIGHT, DEFAULT_STEADY, DEFAULT_TOPIC,
    MAX_DEVICES, MAX_PHASES, MAX_PHASE_GROUPS,
};
use crate::scenario::error::{did_you_mean, list_keys, ErrorKind, ScenarioError};
use crate::scenario::model::{Group, LateSends, Phase, PhaseKind, Qos, Scenario};
use crate::scenario::raw::{RawPhase, RawScenario, Value};
use crate::scenario::template::Template;
use crate::scenario::units::parse_rate;

type Result<T> = std::result::Result<T, ScenarioError>;

impl Validator<'_> {
    pub fn scenario(&self, raw: RawScenario) -> Result<Scenario> {
        if let Some(v) = &raw.version {
            let ok = matches!(&v.value, Value::Int(1))
                || matches!(&v.value, Value::Float(f) if *f == 1.0)
                || matches!(&v.value, Value::Str(s) if s.trim() == "1");
            if !ok {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    loc(&v.referenced),
                    Some("version".into()),
                    format!(
                        "unsupported scenario format version: {}",
                        v.value.describe()
                    ),
                    Some(
                        "this fleetstorm reads version 1; write `version: 1` or remove the line"
                            .into(),
                    ),
                ));
            }
        }
        let name = self.name(
            &raw.name,
            "name",
            "scenario name",
            "the name is used in the report directory name; use e.g. `name: factory-test-1`",
        )?;
        let seed = match &raw.seed {
            None => 1,
            Some(v) => {
                let i = self.int_in(
                    v,
                    "seed",
                    "seed",
                    0,
                    i128::from(u64::MAX),
                    "use a whole number from 0 to 18446744073709551615, e.g. `seed: 42`",
                )?;
                u64::try_from(i).unwrap_or(1)
            }
        };

        let mut broker = match &raw.broker {
            Some(b) => self.broker(&b.value)?,
            None => default_broker()?,
        };

        let groups = self.groups(&raw)?;
        self.check_session_protocol(&raw, &broker)?;

        // Client ids must be unique over the fleet.
        self.check_client_id(&raw, &mut broker, groups.len())?;
        self.check_identity_files(&raw, &broker, &groups)?;

        // Everything a device encodes (topics, client id, credentials) fits MQTT's 65,535-byte strings.
        self.check_lengths(&raw, &broker, &groups)?;

        let phases = self.phases(&raw, groups.len())?;
        let observers = self.observers(&raw, &broker, &groups)?;
        let (thresholds, baseline) = self.gates(&raw)?;
        let search = match &raw.search {
            Some(b) => Some(self.search(&b.value)?),
            None => None,
        };
        // The scenario's own profiles that its groups use, for the record (built-in ones are known by name).
        let mut profiles: Vec<std::sync::Arc<crate::telemetry::Profile>> = Vec::new();
        for g in &groups {
            let own = !crate::scenario::BUILTIN_NAMES.contains(&g.profile.name());
            if own && !profiles.iter().any(|p| p.name() == g.profile.name()) {
                profiles.push(g.profile.clone());
            }
        }

        Ok(Scenario {
            name,
            seed,
            broker,
            profiles,
            groups,
            phases,
            observers,
            thresholds,
            baseline,
            search,
        })
    }

    fn groups(&self, raw: &RawScenario) -> Result<Vec<Group>> {
        let profiles = self.scenario_profiles(raw.profiles.as_ref())?;
        let list = &raw.groups;
        if list.value.is_empty() {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&list.referenced),
                Some("groups".into()),
                "at least one device group is needed",
                Some(
                    "add a group, e.g. `- { name: sensors, count: 100, profile: environment-sensor }`"
                        .into(),
                ),
            ));
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: u64 = 0;
        let mut out = Vec::with_capacity(list.value.len());
        for (i, g) in list.value.iter().enumerate() {
            let g = &g.value;
            let p = |k: &str| format!("groups[{i}].{k}");
            let name = self.name(
                &g.name,
                &p("name"),
                "group name",
                "group names appear in topics, client ids and reports; use e.g. `name: press-line-1`",
            )?;
            if !seen.insert(name.clone()) {
                return Err(self.invalid(
                    &g.name,
                    &p("name"),
                    format!("duplicate group name `{name}`"),
                    "every group needs its own name; rename one of them",
                ));
            }
            let count_hint =
                "the number of devices in this group, from 1 to 10000000, e.g. `count: 100`";
            let count = self.int(&g.count, &p("count"), count_hint)?;
            if count < 1 {
                return Err(self.invalid(
                    &g.count,
                    &p("count"),
                    format!("a group needs at least 1 device, got {count}"),
                    count_hint,
                ));
            }
            let count = u64::try_from(count)
                .ok()
                .filter(|c| *c <= MAX_DEVICES)
                .ok_or_else(|| {
                    self.invalid(
                        &g.count,
                        &p("count"),
                        format!("at most {MAX_DEVICES} devices are supported, got {count}"),
                        count_hint,
                    )
                })?;
            total += count;
            if total > MAX_DEVICES {
                return Err(self.invalid(
                    &g.count,
                    &p("count"),
                    format!("the scenario has {total} devices so far; at most {MAX_DEVICES} are supported"),
                    "reduce the counts, or split the fleet over several machines with sharding",
                ));
            }
            let profile_names: Vec<&str> = profiles.iter().map(|p| p.name()).collect();
            let profile_hint = |got: &str| {
                let mut h = format!("known profiles are {}", list_keys(&profile_names));
                if let Some(m) = did_you_mean(got, profile_names.iter().copied()) {
                    h.push_str(&format!("; did you mean `{m}`?"));
                }
                h
            };
            let profile_text = self.text(&g.profile, &p("profile"), &profile_hint(""))?;
            let profile = profiles
                .iter()
                .find(|p| p.name() == profile_text.trim())
                .cloned()
                .ok_or_else(|| {
                    self.invalid(
                        &g.profile,
                        &p("profile"),
                        format!(
                            "unknown profile `{}`",
                            crate::scenario::error::shorten(&profile_text, 60)
                        ),
                        &profile_hint(&profile_text),
                    )
                })?;
            let interval = match &g.interval {
                None => profile.interval().unwrap_or(Duration::from_secs(1)),
                Some(v) => {
                    let hint = "the time between two publishes of one device, at least `1ms`, e.g. `interval: 1s`";
                    let d = self.duration(v, &p("interval"), hint)?;
                    if d < Duration::from_millis(1) {
                        return Err(self.invalid(
                            v,
                            &p("interval"),
                            "interval must be at least 1ms".into(),
                            hint,
                        ));
                    }
                    d
                }
            };
            let qos = match &g.qos {
                None => Qos::AtMostOnce,
                Some(v) => {
                    let hint = "use 0 (at most once), 1 (at least once) or 2 (exactly once)";
                    let q = self.int(v, &p("qos"), hint)?;
                    match q {
                        0 => Qos::AtMostOnce,
                        1 => Qos::AtLeastOnce,
                        2 => Qos::ExactlyOnce,
                        _ => {
                            return Err(self.invalid(
                                v,
                                &p("qos"),
                                format!("QoS must be 0, 1 or 2, got {q}"),
                                hint,
                            ))
                        }
                    }
                }
            };
            let retain = match &g.retain {
                None => false,
                Some(v) => {
                    self.boolean(v, &p("retain"), "write `retain: true` or `retain: false`")?
                }
            };
            let topic = match &g.topic {
                None => Template::parse(DEFAULT_TOPIC).map_err(|e| self.internal(e.to_string()))?,
                Some(v) => {
                    let hint = "placeholders are {group}, {index}, {global_index} and {client_id}, e.g. `plant/{group}/{client_id}/telemetry`";
                    let t = self.template(v, &p("topic"), hint)?;
                    if t.as_str().is_empty() {
                        return Err(self.invalid(
                            v,
                            &p("topic"),
                            "the topic is empty".into(),
                            hint,
                        ));
                    }
                    if t.as_str().contains(['+', '#']) {
                        return Err(self.invalid(
                            v,
                            &p("topic"),
                            "a publish topic may not contain the wildcards `+` or `#`".into(),
                            hint,
                        ));
                    }
                    t
                }
            };
            let max_inflight = match &g.max_inflight {
                None => DEFAULT_MAX_INFLIGHT,
                Some(v) => {
                    let hint = "unacknowledged QoS 1/2 publishes per device, 1 to 65535, e.g. `max_inflight: 16`";
                    let n = self.int_in(v, &p("max_inflight"), "max_inflight", 1, 65_535, hint)?;
                    u16::try_from(n).unwrap_or(DEFAULT_MAX_INFLIGHT)
                }
            };
            let late_sends = match &g.late_sends {
                None => LateSends::Send,
                Some(v) => {
                    let hint = "`send` (default: every scheduled message goes out, late ones count as overrun) or `skip` (slots a whole interval late are dropped and counted as skipped)";
                    match self.text(v, &p("late_sends"), hint)?.trim() {
                        "send" => LateSends::Send,
                        "skip" => LateSends::Skip,
                        other => {
                            return Err(self.invalid(
                                v,
                                &p("late_sends"),
                                format!(
                                    "unknown late_sends policy `{}`",
                                    crate::scenario::error::shorten(other, 40)
                                ),
                                hint,
                            ))
                        }
                    }
                }
            };
            let payload = self.payload(g, &p, &name)?;
            let session = self.session(g, &p)?;
            let commands = self.commands(g, &p, &name, &topic, &payload)?;
            out.push(Group {
                name,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                profile,
                interval,
                qos,
                retain,
                topic,
                max_inflight,
                late_sends,
                payload,
                session,
                commands,
            });
        }
        Ok(out)
    }

    fn phases(&self, raw: &RawScenario, groups: usize) -> Result<Vec<Phase>> {
        let default_ramp = || Phase {
            name: "ramp".into(),
            kind: PhaseKind::Ramp {
                connect_rate_per_s: DEFAULT_CONNECT_RATE,
            },
        };
        let Some(list) = &raw.phases else {
            return Ok(vec![
                default_ramp(),
                Phase {
                    name: "steady".into(),
                    kind: PhaseKind::Steady {
                        duration: DEFAULT_STEADY,
                    },
                },
            ]);
        };
        // Memory grows with phases x groups (each keeps its own latency histograms per worker
        // thread): refuse what cannot run in bounded memory, at the first phase too many.
        let memory_hint = || {
            format!(
                "each phase keeps its own latency histograms for every group and worker thread (~{} KB per metric), so memory grows with phases x groups; merge consecutive phases of the same kind into one longer phase, use fewer groups, or split the test into several runs",
                crate::metrics::histogram::HISTOGRAM_BYTES * 2 / 1000
            )
        };
        if let Some(item) = list.value.get(MAX_PHASES) {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&item.referenced).or(loc(&list.referenced)),
                Some(format!("phases[{MAX_PHASES}]")),
                format!(
                    "{} phases; a scenario may have at most {MAX_PHASES}",
                    list.value.len()
                ),
                Some(memory_hint()),
            ));
        }
        let mut out: Vec<Phase> = Vec::with_capacity(list.value.len() + 1);
        // Where each phase was written (for name clashes), parallel to `out`.
        let mut where_: Vec<(Option<(usize, usize)>, String)> = Vec::new();
        let mut ramps = 0usize;
        let mut steadies = 0usize;
        for (i, item) in list.value.iter().enumerate() {
            let p: &RawPhase = &item.value;
            let path = format!("phases[{i}]");
            let item_loc = loc(&item.referenced);
            let set = [
                p.ramp.is_some(),
                p.steady.is_some(),
                p.churn.is_some(),
                p.storm.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set != 1 {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    item_loc,
                    Some(path),
                    if set == 0 {
                        "a phase needs one of `ramp`, `steady`, `churn` or `storm`"
                    } else {
                        "a phase may have only one of `ramp`, `steady`, `churn` and `storm`"
                    },
                    Some(
                        "write each phase as its own list item: `- ramp: { connect_rate: 500/s }`, `- steady: { duration: 30s }`, `- churn: { duration: 30s, rate: 20/s }` or `- storm: { duration: 30s, fraction: 0.3 }`"
                            .into(),
                    ),
                ));
            }
            let kind = if let Some(r) = &p.ramp {
                ramps += 1;
                if ramps > 1 || i > 0 {
                    return Err(self.r.error(
                            ErrorKind::InvalidValue,
                            loc(&r.referenced).or(item_loc),
                            Some(format!("{path}.ramp")),
                            if ramps > 1 {
                                "only one ramp phase is allowed"
                            } else {
                                "the ramp phase must come first"
                            },
                            Some("devices connect once, in the ramp; put a single ramp first and use steady phases after it".into()),
                        ));
                }
                let v = &r.value.connect_rate;
                let cpath = format!("{path}.ramp.connect_rate");
                let hint = "use a positive rate such as `500/s`, `30000/min` or `2/h`";
                let text = self.unit_text(v, &cpath, "a rate such as `500/s`", hint)?;
                let rate = parse_rate(&text).map_err(|m| self.invalid(v, &cpath, m, hint))?;
                if rate <= 0.0 || !rate.is_finite() {
                    return Err(self.invalid(
                        v,
                        &cpath,
                        "connect_rate must be greater than zero".into(),
                        hint,
                    ));
                }
                PhaseKind::Ramp {
                    connect_rate_per_s: rate,
                }
            } else if let Some(s) = &p.steady {
                steadies += 1;
                let v = &s.value.duration;
                let dpath = format!("{path}.steady.duration");
                let hint = "use a positive duration such as `30s`, `5m` or `1h`";
                let d = self.duration(v, &dpath, hint)?;
                if d.is_zero() {
                    return Err(self.invalid(
                        v,
                        &dpath,
                        "a steady phase must last longer than zero".into(),
                        hint,
                    ));
                }
                PhaseKind::Steady { duration: d }
            } else {
                steadies += 1;
                self.behaviour(p, &path)?
            };
            let (name, name_loc, name_path) = match &p.name {
                Some(v) => (
                    self.name(
                        v,
                        &format!("{path}.name"),
                        "phase name",
                        "phase names appear in reports; use e.g. `name: warm-up`",
                    )?,
                    loc(&v.referenced),
                    format!("{path}.name"),
                ),
                None => {
                    let base = kind.kind_name();
                    let n = out.iter().filter(|ph| ph.kind.kind_name() == base).count() + 1;
                    let name = if n <= 1 {
                        base.to_owned()
                    } else {
                        format!("{base}-{n}")
                    };
                    (name, item_loc, path.clone())
                }
            };
            if out.iter().any(|ph| ph.name == name) {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    name_loc,
                    Some(name_path),
                    format!("duplicate phase name `{name}`"),
                    Some("give each phase a unique `name:`".into()),
                ));
            }
            where_.push((name_loc, name.clone()));
            out.push(Phase { name, kind });
        }
        if steadies == 0 {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&list.referenced),
                Some("phases".into()),
                "at least one steady phase is needed",
                Some("add `- steady: { duration: 30s }` after the ramp".into()),
            ));
        }
        if ramps == 0 {
            if out.iter().any(|ph| ph.name == "ramp") {
                let at = where_
                    .iter()
                    .find(|(_, n)| n == "ramp")
                    .and_then(|(l, _)| *l);
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    at,
                    Some("phases".into()),
                    "a steady phase is named `ramp`, which clashes with the default ramp phase",
                    Some("rename that phase, or add an explicit `- ramp: { connect_rate: 500/s }` first".into()),
                ));
            }
            out.insert(0, default_ramp());
        }
        let cells = out.len().saturating_mul(groups);
        if out.len() > MAX_PHASES || cells > MAX_PHASE_GROUPS {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&list.referenced),
                Some("phases".into()),
                format!(
                    "{} phases{} x {groups} groups = {cells} phase x group cells; a scenario may have at most {MAX_PHASES} phases and {MAX_PHASE_GROUPS} cells",
                    out.len(),
                    if ramps == 0 { " (with the default ramp)" } else { "" }
                ),
                Some(memory_hint()),
            ));
        }
        Ok(out)
    }

    fn internal(&self, message: String) -> ScenarioError {
        self.r
            .error(ErrorKind::InvalidValue, None, None, message, None)
    }
}
