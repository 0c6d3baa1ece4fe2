//! Validation of `search:`: the settings of `fleetstorm search` written in the scenario (its flags
//! override each key). Only what one key can say is checked here; the command checks the settings
//! once flags and block are merged (e.g. `--to` below the block's `from`).

use crate::scenario::context::Validator;
use crate::scenario::error::ScenarioError;
use crate::scenario::model::{SearchSettings, Vary};
use crate::scenario::raw::{RawSearch, Scalar, Value};
use crate::threshold::{parse_percent, parse_threshold};

type Result<T> = std::result::Result<T, ScenarioError>;

/// The highest load a search may name (devices, or msg/s).
const MAX_LOAD: i128 = 1_000_000_000;

impl Validator<'_> {
    pub(super) fn search(&self, raw: &RawSearch) -> Result<SearchSettings> {
        let mut s = SearchSettings::default();
        if let Some(list) = &raw.slos {
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("search.slos[{i}]");
                let hint =
                    "write e.g. `e2e.p99 < 50ms` or `loss_ratio == 0` (the threshold grammar)";
                let text = self.text(v, &path, hint)?;
                let t = parse_threshold(&text)
                    .map_err(|e| self.invalid(v, &path, e.message.clone(), &e.hint))?;
                s.slos.push(t);
            }
        }
        if let Some(v) = &raw.vary {
            let hint =
                "`vary: devices` (the number of devices) or `vary: rate` (the fleet's msg/s)";
            s.vary = Some(match self.text(v, "search.vary", hint)?.as_str() {
                "devices" => Vary::Devices,
                "rate" => Vary::Rate,
                other => {
                    return Err(self.invalid(
                        v,
                        "search.vary",
                        format!("unknown load `{other}`"),
                        hint,
                    ))
                }
            });
        }
        let load = |v: &Option<Scalar>, key: &str, hint: &str| -> Result<Option<u64>> {
            v.as_ref()
                .map(|v| {
                    let path = format!("search.{key}");
                    let i = self.int_in(v, &path, key, 1, MAX_LOAD, hint)?;
                    Ok(u64::try_from(i).unwrap_or(1))
                })
                .transpose()
        };
        s.from = load(
            &raw.from,
            "from",
            "the first load, devices (or msg/s with `vary: rate`), e.g. `from: 1000`",
        )?;
        s.to = load(&raw.to, "to", "the highest load tried, e.g. `to: 200000`")?;
        s.require = load(
            &raw.require,
            "require",
            "the capacity below which the search exits 1, e.g. `require: 30000`",
        )?;
        if let (Some(from), Some(to), Some(v)) = (s.from, s.to, &raw.to) {
            if to < from {
                return Err(self.invalid(
                    v,
                    "search.to",
                    format!("`to` ({to}) is below `from` ({from})"),
                    "the search grows from `from` up to `to`: give `to` at least `from`",
                ));
            }
        }
        if let Some(v) = &raw.growth {
            let hint = "each growing step multiplies the load by this: above 1, at most 100, e.g. `growth: 2`";
            let g = match &v.value {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => return Err(self.wrong_type(v, "search.growth", "a number", hint)),
            };
            if !(g > 1.0 && g <= 100.0) {
                return Err(self.invalid(
                    v,
                    "search.growth",
                    format!("growth must be above 1 and at most 100, got {g}"),
                    hint,
                ));
            }
            s.growth = Some(g);
        }
        let percent = |v: &Scalar, key: &str, hint: &str| -> Result<f64> {
            let path = format!("search.{key}");
            let text = self.unit_text(v, &path, "a percentage", hint)?;
            parse_percent(&text).map_err(|e| self.invalid(v, &path, e.message.clone(), &e.hint))
        };
        if let Some(v) = &raw.resolution {
            let hint = "bisection stops when the first failing load is within this much above the capacity, e.g. `resolution: 5%`";
            let r = percent(v, "resolution", hint)?;
            if !(r > 0.0 && r < 1.0) {
                return Err(self.invalid(
                    v,
                    "search.resolution",
                    "the resolution must be above 0% and below 100%".to_owned(),
                    hint,
                ));
            }
            s.resolution = Some(r);
        }
        if let Some(v) = &raw.tolerance {
            let hint = "the capacity may fall this much below the baseline's before it is a regression, e.g. `tolerance: 10%`";
            let t = percent(v, "tolerance", hint)?;
            if !(0.0..1.0).contains(&t) {
                return Err(self.invalid(
                    v,
                    "search.tolerance",
                    "the tolerance must be at least 0% and below 100%".to_owned(),
                    hint,
                ));
            }
            s.tolerance = Some(t);
        }
        if let Some(v) = &raw.max_steps {
            let i = self.int_in(
                v,
                "search.max_steps",
                "max_steps",
                2,
                1000,
                "steps at most, confirmations included (a step and its confirmation: at least 2), e.g. `max_steps: 20`",
            )?;
            s.max_steps = Some(u32::try_from(i).unwrap_or(2));
        }
        if let Some(v) = &raw.settle {
            s.settle = Some(self.duration(
                v,
                "search.settle",
                "the time each step publishes before its window is measured, e.g. `settle: 5s` (`0s`: none)",
            )?);
        }
        if let Some(v) = &raw.window {
            let hint = "the measured window of each step, e.g. `window: 20s`";
            let w = self.duration(v, "search.window", hint)?;
            if w.is_zero() {
                return Err(self.invalid(
                    v,
                    "search.window",
                    "the measured window must be longer than zero".to_owned(),
                    hint,
                ));
            }
            s.window = Some(w);
        }
        if let Some(v) = &raw.baseline {
            let text = self.text(
                v,
                "search.baseline",
                "the search.json of an earlier search (or its folder), relative to the scenario file, e.g. `baseline: baselines/search.json`",
            )?;
            s.baseline = Some(text.into());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::parse;
    use std::time::Duration;

    const MINI: &str = "name: t\ngroups:\n  - { name: a, count: 2, profile: energy-meter }\n";

    #[test]
    fn a_full_block_is_read() {
        let s = parse(
            &format!(
                "{MINI}search:\n  slos: [\"e2e.p99 < 50ms\", \"loss_ratio == 0\"]\n  vary: rate\n  from: 100\n  to: 800\n  growth: 1.5\n  resolution: 10%\n  max_steps: 9\n  settle: 1s\n  window: 3s\n  require: 200\n  baseline: old/search.json\n  tolerance: 5%\n"
            ),
            "t.yaml",
        )
        .unwrap();
        let b = s.search.unwrap();
        assert_eq!(b.slos.len(), 2);
        assert_eq!(b.slos[0].to_string(), "e2e.p99 < 50ms");
        assert_eq!(b.vary, Some(crate::scenario::Vary::Rate));
        assert_eq!((b.from, b.to, b.require), (Some(100), Some(800), Some(200)));
        assert_eq!(b.growth, Some(1.5));
        assert!((b.resolution.unwrap() - 0.10).abs() < 1e-12);
        assert!((b.tolerance.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(b.max_steps, Some(9));
        assert_eq!(b.settle, Some(Duration::from_secs(1)));
        assert_eq!(b.window, Some(Duration::from_secs(3)));
        assert_eq!(b.baseline.unwrap().to_str(), Some("old/search.json"));
        assert!(parse(MINI, "t.yaml").unwrap().search.is_none());
    }

    #[test]
    fn bad_keys_name_their_line_and_field() {
        for (block, path, line, words) in [
            (
                "search:\n  vary: cpu\n",
                "search.vary",
                5,
                "unknown load `cpu`",
            ),
            ("search:\n  from: 0\n", "search.from", 5, "between 1"),
            (
                "search:\n  from: 10\n  to: 5\n",
                "search.to",
                6,
                "below `from`",
            ),
            ("search:\n  growth: 1\n", "search.growth", 5, "above 1"),
            (
                "search:\n  slos: [\"e2e.p99 <\"]\n",
                "search.slos[0]",
                5,
                "",
            ),
            (
                "search:\n  window: 0s\n",
                "search.window",
                5,
                "longer than zero",
            ),
            (
                "search:\n  max_steps: 1\n",
                "search.max_steps",
                5,
                "between 2",
            ),
            (
                "search:\n  tolerance: 120%\n",
                "search.tolerance",
                5,
                "below 100%",
            ),
        ] {
            let e = parse(&format!("{MINI}{block}"), "t.yaml").unwrap_err();
            assert_eq!(e.key_path(), Some(path), "{block}: {e}");
            assert_eq!(e.location().map(|l| l.0), Some(line), "{block}: {e}");
            assert!(e.to_string().contains(words), "{block}: {e}");
            assert!(e.hint().is_some(), "{block}: {e}");
        }
        let e = parse(&format!("{MINI}search:\n  form: 10\n"), "t.yaml").unwrap_err();
        assert_eq!(e.key_path(), Some("search.form"));
        assert!(e.hint().unwrap().contains("`from`"), "{e}");
    }
}
