//! The fields of text log lines, written as plain text ([`crate::escape::text`]):
//! a field that quotes a file name, a diagnostic or a live value cannot break an
//! event over several lines or drive the terminal. JSON logs need no such rule.

use crate::escape;
use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats an event's or span's fields as `message name=value …`, like
/// `tracing_subscriber`'s default, with every value escaped.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // Bridged `log` records carry their metadata as fields the line already shows.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let value = value.to_string();
        let value = escape::text(&value);
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = if name == "message" {
            write!(self.writer, "{separator}{value}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            let (italic, dimmed) = match self.writer.has_ansi_escapes() {
                true => (anstyle::Style::new().italic(), anstyle::Style::new().dimmed()),
                false => (anstyle::Style::new(), anstyle::Style::new()),
            };
            write!(self.writer, "{separator}{italic}{name}{italic:#}{dimmed}={dimmed:#}{value}")
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.write(field, format_args!("{value}")),
            // Quoted as values are everywhere else in grattr's text.
            _ => self.write(field, format_args!("{}", escape::quoted(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_event_is_one_line_whatever_its_fields_hold() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let file = "groups/a\n# heading\u{202e}.yaml";
            tracing::error!(diagnostic = %file, value = "x\u{7f}\u{85}", count = 3, "invalid\ndesired state");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            text.ends_with(
                r#"invalid\ndesired state diagnostic=groups/a\n# heading\u202e.yaml value="x\u007f\u0085" count=3
"#
            ),
            "{text:?}"
        );
    }
}
