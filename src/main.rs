use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kerasrs::cli::Cli::parse();
    match kerasrs::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
