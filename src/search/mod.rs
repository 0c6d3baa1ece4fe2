//! Capacity search (issue 13): how much load a broker takes before its SLOs break. Pure: the step
//! policy (grow geometrically, bisect, confirm), the verdict of one step from its report (via the
//! gates), and the result with its table. `app_search` runs the steps through the engine.

mod ci;
#[cfg(test)]
pub(crate) mod fixture;
mod judge;
mod live;
mod policy;
mod result;
mod text;

pub use ci::{
    check_baseline, check_require, compare_baseline, conclude, BaselineCheck, BaselineError,
    BaselineSearch, Conclusion, RequireCheck, DEFAULT_TOLERANCE,
};
pub use judge::{
    classify, judge, scoped, Judgement, Measures, Percentiles, SloCheck, WindowLatency,
    OVERLOAD_TOLERANCE,
};
pub use live::LiveStep;
pub use policy::{Answer, Next, Policy, PolicyError, Purpose, Search, Verdict};
pub use result::{render, thousands, SearchResult, Step, Vary, SEARCH_SCHEMA_VERSION};
