//! Validation of `thresholds:` and `baseline:`: CI gates written in the scenario.

use crate::scenario::context::Validator;
use crate::scenario::error::ScenarioError;
use crate::scenario::model::Baseline;
use crate::scenario::raw::RawScenario;
use crate::threshold::{parse_percent, parse_threshold, Threshold, DEFAULT_MAX_REGRESSION};

type Result<T> = std::result::Result<T, ScenarioError>;

impl Validator<'_> {
    pub(super) fn gates(&self, raw: &RawScenario) -> Result<(Vec<Threshold>, Option<Baseline>)> {
        let mut thresholds = Vec::new();
        if let Some(list) = &raw.thresholds {
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("thresholds[{i}]");
                let hint = "write e.g. `e2e.p99 < 50ms`, `steady:puback.p99.9 < 200ms`, `loss_ratio <= 0.0001`, `publish_rate >= 9500/s` or `connect_failures == 0`";
                let text = self.text(v, &path, hint)?;
                let t = parse_threshold(&text)
                    .map_err(|e| self.invalid(v, &path, e.message.clone(), &e.hint))?;
                thresholds.push(t);
            }
        }
        let baseline = match &raw.baseline {
            None => None,
            Some(b) => {
                let b = &b.value;
                let hint = "the report.json of an earlier run (or its directory), e.g. `report: baselines/factory.json`";
                let report = self.text(&b.report, "baseline.report", hint)?;
                let max_regression = match &b.max_regression {
                    None => DEFAULT_MAX_REGRESSION,
                    Some(v) => {
                        let hint = "a percentage such as `max_regression: 10%`";
                        let text =
                            self.unit_text(v, "baseline.max_regression", "a percentage", hint)?;
                        parse_percent(&text).map_err(|e| {
                            self.invalid(v, "baseline.max_regression", e.message.clone(), &e.hint)
                        })?
                    }
                };
                Some(Baseline {
                    report: report.into(),
                    max_regression,
                })
            }
        };
        Ok((thresholds, baseline))
    }
}
