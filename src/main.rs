use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fleetstorm::cli::Cli::parse();
    let exit = fleetstorm::app::main(cli);
    ExitCode::from(exit.code())
}
