//! Standard output for large documents (a plan of 100,000 groups is tens of
//! megabytes): one buffered writer, written in large pieces, and styled text only
//! where it is shown with colour. Where colour is off (a file, a pipe, `NO_COLOR`),
//! text is rendered without styles in the first place rather than styled and then
//! scanned for escape codes to strip; machine output is never altered at all.

use anstream::{AutoStream, ColorChoice};
use std::io::{self, BufWriter, StdoutLock, Write};

/// Large enough that a write is rarely smaller than a page cache folio.
const BUFFER: usize = 256 * 1024;

/// Buffered standard output.
pub(super) enum Stdout {
    /// Bytes go out as written.
    Plain(BufWriter<StdoutLock<'static>>),
    /// Styled text, through anstream (which passes ANSI codes through, or converts
    /// them for a legacy Windows console).
    Styled(BufWriter<AutoStream<StdoutLock<'static>>>),
}

impl Stdout {
    /// For text rendered with or without ANSI styles, as [`Stdout::styled`] says: styled
    /// where anstream would keep colour (a terminal that supports it, `CLICOLOR_FORCE`),
    /// plain otherwise.
    pub(super) fn text() -> Stdout {
        let stream = AutoStream::auto(io::stdout().lock());
        match stream.current_choice() {
            ColorChoice::Never => Stdout::raw(),
            _ => Stdout::Styled(BufWriter::with_capacity(BUFFER, stream)),
        }
    }

    /// For machine output and unstyled text: bytes as written.
    pub(super) fn raw() -> Stdout {
        Stdout::Plain(BufWriter::with_capacity(BUFFER, io::stdout().lock()))
    }

    /// Whether text written here should carry ANSI styles.
    pub(super) fn styled(&self) -> bool {
        matches!(self, Stdout::Styled(_))
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stdout::Plain(out) => out.write(buf),
            Stdout::Styled(out) => out.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stdout::Plain(out) => out.write_all(buf),
            Stdout::Styled(out) => out.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stdout::Plain(out) => out.flush(),
            Stdout::Styled(out) => out.flush(),
        }
    }
}
