//! `grattr completions` and `grattr man`: shell completions and the man page,
//! generated from the same clap definitions that parse the arguments.

use clap::CommandFactory;
use std::io::Write;

/// Options of `grattr completions`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script for the shell on stdout.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "grattr", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(super::exit::OK)
}

/// Prints the man page (roff) on stdout.
pub(super) fn man() -> anyhow::Result<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(super::Cli::command()).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)?;
    Ok(super::exit::OK)
}
