//! Capacity search (issue 13): how much load a broker takes before its SLOs break. Pure: the step
//! policy (grow geometrically, bisect, confirm), the verdict of one step from its report (via the
//! gates), and the result with its table. `app_search` runs the steps through the engine.

mod judge;
mod live;
mod policy;
mod result;

pub use judge::{
    classify, judge, scoped, Judgement, Measures, Percentiles, WindowLatency, OVERLOAD_TOLERANCE,
};
pub use live::LiveStep;
pub use policy::{Answer, Next, Policy, PolicyError, Purpose, Search, Verdict};
pub use result::{render, thousands, SearchResult, Step, Vary, SEARCH_SCHEMA_VERSION};
