//! The commands that print documentation generated from the program itself: shell completions
//! (`completions`), the manual page (`man`) and the JSON Schemas (`schema`).

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, SchemaArgs, SchemaKind};
use crate::error::{CommandError, Exit};

/// The JSON Schema of scenario files (draft 2020-12), as committed in `scenarios/schema.json`.
pub const SCENARIO_SCHEMA: &str = include_str!("../scenarios/schema.json");
/// The JSON Schema of report.json, as committed in `reports/schema.json`.
pub const REPORT_SCHEMA: &str = include_str!("../reports/schema.json");
/// The JSON Schema of a capacity search's search.json, as committed in `reports/search.schema.json`.
pub const SEARCH_SCHEMA: &str = include_str!("../reports/search.schema.json");

fn write_err(what: &str) -> impl Fn(std::io::Error) -> CommandError + '_ {
    move |e| CommandError::Usage(format!("cannot print the {what}: {e}"))
}

/// `fleetstorm completions SHELL`.
pub fn completions(args: &CompletionsArgs) -> Result<Exit, CommandError> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "fleetstorm", &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(write_err("completion script"))?;
    Ok(Exit::Success)
}

/// `fleetstorm man`.
pub fn man() -> Result<Exit, CommandError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(write_err("manual page"))?;
    std::io::stdout()
        .write_all(&out)
        .map_err(write_err("manual page"))?;
    Ok(Exit::Success)
}

/// `fleetstorm schema [scenario|report|search]`.
pub fn schema(args: &SchemaArgs) -> Result<Exit, CommandError> {
    let text = match args.kind {
        SchemaKind::Scenario => SCENARIO_SCHEMA,
        SchemaKind::Report => REPORT_SCHEMA,
        SchemaKind::Search => SEARCH_SCHEMA,
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(write_err("schema"))?;
    Ok(Exit::Success)
}
