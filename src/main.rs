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
    // A training step allocates and frees the same large activation
    // buffers every step. glibc serves blocks above 128 KiB with fresh
    // `mmap`s and returns freed heap tops to the kernel, so each step paid
    // for page faults on memory it had just released; keep it instead (the
    // peak is the same, it is only not given back between steps).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator tunables; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let cli = kerasrs::cli::Cli::parse();
    kerasrs::cli::interrupt::install();
    match kerasrs::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Messages quote names from the files read (layers, members,
            // datasets): control characters in them are shown escaped.
            eprintln!("error: {}", kerasrs::text::sanitize(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}
