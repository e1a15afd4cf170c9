use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kerasrs::cli::Cli::parse();
    kerasrs::cli::interrupt::install();
    match kerasrs::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
