use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Output to a closed pipe (`kerasrs load m.keras | head -1`) ends the
    // program quietly, as it does for Unix tools, instead of a panic in
    // `println!`: restore the default SIGPIPE action Rust's runtime ignores.
    #[cfg(unix)]
    // SAFETY: called first in `main`, before any other thread exists;
    // `signal` with `SIG_DFL` only resets the disposition of SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
