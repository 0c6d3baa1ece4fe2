//! Validation of `observers:`: subscriber sessions that audit the fleet's messages.

use std::collections::HashSet;
use std::time::Duration;

use crate::scenario::context::{loc, Validator};
use crate::scenario::error::{ErrorKind, ScenarioError};
use crate::scenario::model::{BrokerSettings, Group, MqttVersion, Observer, Qos, SparkplugHost};
use crate::scenario::raw::{RawObserver, RawScenario};
use crate::scenario::template::TemplateVars;
use crate::scenario::topic::{
    filter_covers, filters_intersect, group_filter, template_filter, valid_filter,
};

/// Most sessions in one observer group.
pub const MAX_OBSERVER_SESSIONS: i128 = 1000;

type Result<T> = std::result::Result<T, ScenarioError>;

/// The filter covering every topic a group publishes on.
pub(crate) fn group_topics(g: &Group) -> String {
    match g.sparkplug_group() {
        Some(id) => format!("spBv1.0/{id}/#"),
        None => group_filter(&g.topic, &g.name),
    }
}

/// The topic of the first and the last device of a group (enough to tell whether a filter covers the
/// whole group, since templates only vary by placeholders).
fn edge_topics(g: &Group, client_id: &crate::scenario::template::Template) -> [String; 2] {
    let render = |index: u64| {
        let vars = TemplateVars {
            group: &g.name,
            index,
            global_index: index,
            client_id: "",
        };
        let id = client_id.render(&vars);
        g.topic.render(&TemplateVars {
            client_id: &id,
            ..vars
        })
    };
    [render(0), render(u64::from(g.count.saturating_sub(1)))]
}

impl Validator<'_> {
    pub(super) fn observers(
        &self,
        raw: &RawScenario,
        broker: &BrokerSettings,
        groups: &[Group],
    ) -> Result<Vec<Observer>> {
        let Some(list) = &raw.observers else {
            return Ok(Vec::new());
        };
        let edges: Vec<[String; 2]> = groups
            .iter()
            .map(|g| edge_topics(g, &broker.client_id))
            .collect();
        // Observers tell a message's group from its topic: no two groups' topics may overlap.
        let filters: Vec<String> = groups.iter().map(group_topics).collect();
        for (a, ga) in groups.iter().enumerate() {
            for (b, gb) in groups.iter().enumerate().skip(a + 1) {
                // Sparkplug groups are told apart by their Sparkplug group id, JSON groups by topic.
                let both_json = ga.sparkplug_group().is_none() && gb.sparkplug_group().is_none();
                if both_json && filters_intersect(&filters[a], &filters[b]) {
                    let first = &list.value[0].value.name;
                    return Err(self.invalid(
                        first,
                        "observers",
                        format!(
                            "observers cannot tell group `{}` from group `{}`: topics like `{}` could belong to both",
                            ga.name, gb.name, edges[a][0]
                        ),
                        "give each group its own topic, e.g. put `{group}` in the topic templates (the default does)",
                    ));
                }
            }
        }
        let mut names = HashSet::new();
        let mut hosts = HashSet::new();
        let mut out = Vec::with_capacity(list.value.len());
        for (i, o) in list.value.iter().enumerate() {
            let o = &o.value;
            let p = |k: &str| format!("observers[{i}].{k}");
            let name = self.name(
                &o.name,
                &p("name"),
                "observer name",
                "observer names appear in client ids and reports; use e.g. `name: audit`",
            )?;
            if !names.insert(name.clone()) {
                return Err(self.invalid(
                    &o.name,
                    &p("name"),
                    format!("duplicate observer name `{name}`"),
                    "every observer needs its own name; rename one of them",
                ));
            }
            let count = match &o.count {
                None => 1,
                Some(v) => self.int_in(
                    v,
                    &p("count"),
                    "count",
                    1,
                    MAX_OBSERVER_SESSIONS,
                    "subscriber sessions in this observer, 1 to 1000, e.g. `count: 1`",
                )?,
            };
            let qos = match &o.qos {
                None => Qos::AtLeastOnce,
                Some(v) => match self.int_in(
                    v,
                    &p("qos"),
                    "QoS",
                    0,
                    2,
                    "use 0 (at most once), 1 (at least once) or 2 (exactly once)",
                )? {
                    0 => Qos::AtMostOnce,
                    1 => Qos::AtLeastOnce,
                    _ => Qos::ExactlyOnce,
                },
            };
            let shared = match &o.shared {
                None => false,
                Some(v) => {
                    let s =
                        self.boolean(v, &p("shared"), "write `shared: true` or `shared: false`")?;
                    if s && broker.protocol != MqttVersion::V5 {
                        return Err(self.invalid(
                            v,
                            &p("shared"),
                            "shared subscriptions need MQTT 5".into(),
                            "set `broker.protocol: 5`, or remove `shared: true` so every session gets every message",
                        ));
                    }
                    s
                }
            };
            let topics: Vec<String> = match &o.topics {
                None => {
                    let mut seen = HashSet::new();
                    groups
                        .iter()
                        .map(|g| match g.sparkplug_group() {
                            Some(_) => "spBv1.0/#".to_owned(),
                            None => template_filter(&g.topic),
                        })
                        .filter(|f| seen.insert(f.clone()))
                        .collect()
                }
                Some(list) => {
                    let mut v = Vec::with_capacity(list.value.len());
                    for (j, t) in list.value.iter().enumerate() {
                        let path = format!("observers[{i}].topics[{j}]");
                        let hint = "an MQTT topic filter such as `fleetstorm/+/+/telemetry` or `plant/#` (use `shared: true` rather than writing `$share/...`)";
                        let f = self.text(t, &path, hint)?;
                        if !valid_filter(&f) || f.starts_with("$share/") {
                            return Err(self.invalid(
                                t,
                                &path,
                                format!(
                                    "`{}` is not a valid topic filter",
                                    crate::scenario::error::shorten(&f, 60)
                                ),
                                hint,
                            ));
                        }
                        v.push(f);
                    }
                    if v.is_empty() {
                        return Err(self.r.error(
                            ErrorKind::InvalidValue,
                            loc(&list.referenced),
                            Some(p("topics")),
                            "an observer needs at least one topic filter",
                            Some("remove `topics:` to subscribe to every group's topics, or list filters".into()),
                        ));
                    }
                    v
                }
            };
            // Which groups each filter covers; every group must be covered whole or not at all, and by
            // at most one filter (overlapping filters may deliver a message twice).
            let mut covered = Vec::new();
            for (gi, (g, gf)) in groups.iter().zip(&filters).enumerate() {
                if g.sparkplug_group().is_some() {
                    // audited by the Sparkplug rules: any filter reaching the group's namespace will do
                    if topics.iter().any(|f| filters_intersect(f, gf)) {
                        covered.push(gi);
                    }
                    continue;
                }
                let hits: Vec<&String> =
                    topics.iter().filter(|f| filters_intersect(f, gf)).collect();
                let whole: Vec<&&String> = hits.iter().filter(|f| filter_covers(f, gf)).collect();
                let first = &edges[gi][0];
                if hits.len() > whole.len() {
                    return Err(self.invalid(
                        &o.name,
                        &p("topics"),
                        format!(
                            "observer `{name}` receives only part of group `{}` (topics like `{first}`), so expected deliveries cannot be counted",
                            g.name
                        ),
                        "use filters that match every device of a group, e.g. one `+` per placeholder level",
                    ));
                }
                if whole.len() > 1 {
                    return Err(self.invalid(
                        &o.name,
                        &p("topics"),
                        format!(
                            "filters `{}` and `{}` both match group `{}`; brokers may deliver such messages twice",
                            whole[0], whole[1], g.name
                        ),
                        "keep one filter per group in an observer, or split them into two observers",
                    ));
                }
                if whole.len() == 1 {
                    covered.push(gi);
                }
            }
            if covered.is_empty() {
                return Err(self.invalid(
                    &o.name,
                    &p("topics"),
                    format!("observer `{name}` matches no group's topic (e.g. `{}`)", edges.first().map_or("", |e| e[0].as_str())),
                    "write filters that match the groups' topics, or remove `topics:` to use them all",
                ));
            }
            let sparkplug_host = self.sparkplug_host(o, &p, count, shared, &mut hosts)?;
            out.push(Observer {
                name,
                count: u32::try_from(count).unwrap_or(1),
                topics,
                qos,
                shared,
                groups: covered,
                sparkplug_host,
            });
        }
        Ok(out)
    }
}

impl Validator<'_> {
    /// `sparkplug_host` and `sparkplug_host_delay` of one observer: one session acting as a primary host.
    fn sparkplug_host(
        &self,
        o: &RawObserver,
        p: &dyn Fn(&str) -> String,
        count: i128,
        shared: bool,
        hosts: &mut HashSet<String>,
    ) -> Result<Option<SparkplugHost>> {
        let Some(v) = &o.sparkplug_host else {
            if let Some(d) = &o.sparkplug_host_delay {
                return Err(self.invalid(
                    d,
                    &p("sparkplug_host_delay"),
                    "`sparkplug_host_delay` needs `sparkplug_host`".into(),
                    "add `sparkplug_host: <host id>` to the observer, or remove the delay",
                ));
            }
            return Ok(None);
        };
        let path = p("sparkplug_host");
        let host_id = self.sparkplug_id(
            v,
            &path,
            "host id",
            "the primary host application id, without `/`, `+` or `#`, e.g. `sparkplug_host: scada-1`",
        )?;
        if count != 1 || shared {
            return Err(self.invalid(
                v,
                &path,
                "a Sparkplug primary host is one MQTT session".into(),
                "remove `count:` and `shared:` from this observer, or put the host in an observer of its own",
            ));
        }
        if !hosts.insert(host_id.clone()) {
            return Err(self.invalid(
                v,
                &path,
                format!("two observers act as Sparkplug primary host `{host_id}`"),
                "each primary host id belongs to one observer; rename or remove one",
            ));
        }
        let online_delay = match &o.sparkplug_host_delay {
            None => Duration::ZERO,
            Some(d) => self.duration(
                d,
                &p("sparkplug_host_delay"),
                "how long after subscribing the host publishes STATE online, e.g. `sparkplug_host_delay: 2s`",
            )?,
        };
        Ok(Some(SparkplugHost {
            host_id,
            online_delay,
        }))
    }
}
