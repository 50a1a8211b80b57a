//! The `agml` command line: parse, dispatch one verb (src/cli/), map errors to exit codes.

mod cli;

use std::process::ExitCode;

use agml::error::is_bad_input;
use agml::progress::Progress;
use clap::Parser;

fn main() -> ExitCode {
    agml::allocator::keep_freed_memory();
    // Output piped into `head` and the like ends quietly when the reader goes, as with every
    // Unix tool (Rust ignores SIGPIPE, and printing to the closed pipe would panic).
    // SAFETY: restores the signal's default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let progress = Progress::new();
    progress.init_logging();
    match cli::execute(cli.command, &progress) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(if is_bad_input(&error) { 2 } else { 1 })
        }
    }
}
