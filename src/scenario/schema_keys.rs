//! `scenarios/schema.json` (the JSON Schema editors use) names exactly the keys the raw serde types
//! accept: a key added to a `Raw*` type without the schema (or the reverse) fails here. The keys of
//! each type are read from serde itself (the field list a derived `Deserialize` hands to
//! `deserialize_struct`), not from a copy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::collections::BTreeSet;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::profiles::raw::{RawAlarm, RawAnomalies, RawMetric, RawProfile, RawQuality, RawState};
use super::raw::{
    RawBaseline, RawBroker, RawChurn, RawCommands, RawGroup, RawIssue, RawObserver, RawOutages,
    RawPhase, RawRamp, RawScenario, RawSearch, RawSession, RawSparkplug, RawSteady, RawStorm,
    RawTls,
};

/// A deserializer that only records the field names of the struct asked for, then stops.
struct Fields<'a>(&'a mut Vec<&'static str>);

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend_from_slice(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn keys<T: for<'de> Deserialize<'de>>() -> BTreeSet<String> {
    let mut fields = Vec::new();
    let _ = T::deserialize(Fields(&mut fields));
    assert!(
        !fields.is_empty(),
        "{} lists no field",
        std::any::type_name::<T>()
    );
    fields.into_iter().map(str::to_owned).collect()
}

fn schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn schema_names_exactly_the_keys_of_the_raw_types() {
    let schema = schema();
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("", keys::<RawScenario>()),
        ("/properties/baseline", keys::<RawBaseline>()),
        ("/properties/broker", keys::<RawBroker>()),
        ("/properties/search", keys::<RawSearch>()),
        ("/properties/broker/properties/tls", keys::<RawTls>()),
        (
            "/properties/broker/properties/tls/properties/issue",
            keys::<RawIssue>(),
        ),
        ("/$defs/group", keys::<RawGroup>()),
        ("/$defs/group/properties/session", keys::<RawSession>()),
        ("/$defs/group/properties/commands", keys::<RawCommands>()),
        ("/$defs/group/properties/sparkplug", keys::<RawSparkplug>()),
        (
            "/$defs/group/properties/sparkplug/properties/device_outages",
            keys::<RawOutages>(),
        ),
        ("/$defs/phase", keys::<RawPhase>()),
        ("/$defs/phase/properties/ramp", keys::<RawRamp>()),
        ("/$defs/phase/properties/steady", keys::<RawSteady>()),
        ("/$defs/phase/properties/churn", keys::<RawChurn>()),
        ("/$defs/phase/properties/storm", keys::<RawStorm>()),
        ("/$defs/observer", keys::<RawObserver>()),
        ("/$defs/profile", keys::<RawProfile>()),
        ("/$defs/state", keys::<RawState>()),
        ("/$defs/metric", keys::<RawMetric>()),
        ("/$defs/metric/properties/alarm", keys::<RawAlarm>()),
        ("/$defs/metric/properties/quality", keys::<RawQuality>()),
        ("/$defs/metric/properties/anomalies", keys::<RawAnomalies>()),
    ];
    for (pointer, raw) in cases {
        let node = schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("schema.json has no `{pointer}`"));
        let listed: BTreeSet<String> = node["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("`{pointer}` has no properties"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            listed, raw,
            "scenarios/schema.json `{pointer}` lists other keys than the raw type accepts"
        );
        assert_eq!(
            node["additionalProperties"],
            serde_json::Value::Bool(false),
            "`{pointer}` must refuse unknown keys, as the raw type does"
        );
    }
}
