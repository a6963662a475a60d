//! How problems reach the user: diagnostics with a source snippet on a
//! terminal, one line each in logs; other errors as `error: …`. Diagnostics
//! escape what they quote themselves; other errors are written through
//! [`crate::escape::lines`].

use crate::desired::Diagnostic;
use crate::desired::config::ConfigErrors;
use crate::lockfile::LockfileError;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

/// Prints diagnostics to stderr in file order, with snippets of the files they
/// point at when stderr is a terminal.
pub(super) fn diagnostics(diagnostics: &[Diagnostic]) {
    let snippets = std::io::stderr().is_terminal();
    let mut sources: HashMap<Arc<Path>, Option<String>> = HashMap::new();
    let mut err = anstream::stderr().lock();
    for diagnostic in diagnostics {
        let text = if snippets {
            let files = std::iter::once(&diagnostic.location).chain(diagnostic.related.iter().map(|r| &r.location));
            for location in files {
                sources.entry(location.file.clone()).or_insert_with(|| std::fs::read_to_string(&location.file).ok());
            }
            // A blank line after each, as cargo leaves: a snippet takes several lines.
            diagnostic.render_with_sources(|file| sources.get(file).and_then(Option::as_deref)) + "\n"
        } else {
            format!("{diagnostic}\n")
        };
        let _ = err.write_all(text.as_bytes());
    }
}

/// A line such as `3 errors, 1 warning in 2 files`.
pub(super) fn counts(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let mut files: Vec<&Path> = diagnostics.iter().map(|d| &*d.location.file).collect();
    files.sort();
    files.dedup();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!("{}, {} in {}", plural(errors, "error"), plural(warnings, "warning"), plural(files.len(), "file"))
}

/// Prints an error that ends a command. A configuration's mistakes are printed
/// as diagnostics, all of them, then counted when there are several.
pub(super) fn error(error: &anyhow::Error) {
    if let Some(errors) = error.downcast_ref::<ConfigErrors>() {
        diagnostics(&errors.diagnostics);
        if errors.diagnostics.len() > 1 {
            let _ = writeln!(
                anstream::stderr(),
                "error: {} is invalid: {}",
                crate::escape::path(&errors.file),
                counts(&errors.diagnostics)
            );
        }
        return;
    }
    let mut err = anstream::stderr().lock();
    // Errors that carry their own location already read `path:line:col: error: …`.
    let located = error
        .downcast_ref::<Diagnostic>()
        .map(ToString::to_string)
        .or_else(|| error.downcast_ref::<LockfileError>().map(ToString::to_string));
    let text = match located {
        Some(text) => text,
        None => format!("error: {error:#}"),
    };
    let _ = writeln!(err, "{}", crate::escape::lines(&text));
}
