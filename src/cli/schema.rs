//! `grattr schema`: the JSON Schemas editors check the files with.

use crate::desired::schema;
use anyhow::Context;
use std::io::Write;

/// The files there is a schema for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Kind {
    /// A group file under `groups/`.
    Groups,
    /// `grattr.yaml`.
    Config,
    /// An overlay file (`overlays:` in `grattr.yaml`).
    Overlay,
}

/// Options of `grattr schema`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Which file's schema to print.
    #[arg(value_enum)]
    kind: Kind,
}

/// Prints the schema (JSON Schema draft-07) on stdout.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let value = match args.kind {
        Kind::Groups => schema::groups(),
        Kind::Config => schema::config(),
        Kind::Overlay => schema::overlay(),
    };
    let mut json = serde_json::to_string_pretty(&value).context("cannot write the schema as JSON")?;
    json.push('\n');
    std::io::stdout().lock().write_all(json.as_bytes())?;
    Ok(super::exit::OK)
}
