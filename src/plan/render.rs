//! The three renderings of a [`Plan`]: text for terminals and logs (styled with
//! ANSI codes, or written without them where colour is off), Markdown for
//! pull-request comments, and JSON for machines. All three read the same `Plan`; the
//! text and JSON are written to a writer as they are made, a plan of 100,000 groups
//! being tens of megabytes.

use super::{Action, Change, Cost, Plan, SafetyVerdict, Verdict};
use crate::escape::{self, quoted};
use crate::model::{AttributeSet, KeyOrigin, OriginKind, Ownership};
use anstyle::{AnsiColor, Style};
use similar::{ChangeTag, TextDiff};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

const ADDED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const REMOVED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const CHANGED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

/// Values longer than this (escaped) are diffed inline rather than shown whole twice.
const SHORT_VALUE: usize = 60;

/// GitHub refuses comments over 65,536 characters; keep room for the CI's own text.
pub const MARKDOWN_BUDGET: usize = 60_000;

/// A key as written: bare when it is a plain word, quoted otherwise.
pub(crate) fn key_label(key: &str) -> String {
    if bare_key(key) { key.to_string() } else { quoted(key) }
}

/// Whether a key is shown bare: a plain word.
fn bare_key(key: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    !key.is_empty()
        && (key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
            || key.chars().all(word))
}

/// Every key a change touches, in key order: the key, its value before (`None`: added)
/// and after (`None`: removed). Keys with the same value on both sides are left out.
fn touched<'a>(
    before: &'a AttributeSet,
    after: &'a AttributeSet,
) -> impl Iterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)> {
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    std::iter::from_fn(move || {
        loop {
            let next = match (old.peek(), new.peek()) {
                (None, None) => return None,
                (Some(_), None) => old.next().map(|(key, value)| (key, Some(value), None)),
                (None, Some(_)) => new.next().map(|(key, value)| (key, None, Some(value))),
                (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                    std::cmp::Ordering::Less => old.next().map(|(key, value)| (key, Some(value), None)),
                    std::cmp::Ordering::Greater => new.next().map(|(key, value)| (key, None, Some(value))),
                    std::cmp::Ordering::Equal => {
                        let (Some((key, a)), Some((_, b))) = (old.next(), new.next()) else { return None };
                        (a != b).then_some((key, Some(a), Some(b)))
                    }
                },
            };
            if let Some((key, old, new)) = next {
                return Some((key, old, new));
            }
        }
    })
}

/// The width of [`key_label`] of `key`, in characters, without making it when it is bare.
fn label_width(key: &str) -> usize {
    if bare_key(key) { width(key) } else { width(&quoted(key)) }
}

/// The width of `text` in characters, as `{:<width$}` pads.
fn width(text: &str) -> usize {
    if text.is_ascii() { text.len() } else { text.chars().count() }
}

/// Indentation of the lines of a multi-line value diff in the text rendering.
const VALUE_LINES_INDENT: &str = "          ";

/// A changed value: both whole when short, a line diff when either spans lines,
/// else a word-level diff of the two.
pub(crate) fn changed_value(old: &str, new: &str, styled: bool) -> String {
    if old.contains('\n') || new.contains('\n') {
        return changed_lines(old, new, styled);
    }
    let (old_q, new_q) = (quoted(old), quoted(new));
    if old_q.len() <= SHORT_VALUE && new_q.len() <= SHORT_VALUE {
        return format!("{old_q} → {new_q}");
    }
    let diff = TextDiff::from_words(old_q.as_str(), new_q.as_str());
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let text = change.value();
        match (change.tag(), styled) {
            (ChangeTag::Equal, _) => out.push_str(text),
            (ChangeTag::Delete, true) => out += &format!("{REMOVED}[-{text}-]{REMOVED:#}"),
            (ChangeTag::Insert, true) => out += &format!("{ADDED}{{+{text}+}}{ADDED:#}"),
            (ChangeTag::Delete, false) => out += &format!("[-{text}-]"),
            (ChangeTag::Insert, false) => out += &format!("{{+{text}+}}"),
        }
    }
    out
}

/// A line diff of two multi-line values, each line quoted so that trailing spaces
/// and a missing final newline stay visible.
fn changed_lines(old: &str, new: &str, styled: bool) -> String {
    let count = |text: &str| text.split_inclusive('\n').count();
    let mut out = format!("({} lines → {} lines)", count(old), count(new));
    for change in TextDiff::from_lines(old, new).iter_all_changes() {
        let (sign, style) = match change.tag() {
            ChangeTag::Equal => (' ', Style::new()),
            ChangeTag::Delete => ('-', REMOVED),
            ChangeTag::Insert => ('+', ADDED),
        };
        let line = quoted(change.value());
        if styled {
            out += &format!("\n{VALUE_LINES_INDENT}{style}{sign} {line}{style:#}");
        } else {
            out += &format!("\n{VALUE_LINES_INDENT}{sign} {line}");
        }
    }
    out
}

fn unchanged_count(change: &Change) -> usize {
    match (&change.before, &change.after) {
        (Some(before), Some(after)) => before.iter().filter(|(k, v)| after.get(k) == Some(*v)).count(),
        _ => 0,
    }
}

/// The closing summary: `Plan: 2 to create, 1 to update, 0 to delete, 97 unchanged.`
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to delete, {} unchanged.",
        s.create, s.update, s.delete, s.unchanged
    );
    if s.not_declared > 0 {
        let groups = if s.not_declared == 1 { "group is" } else { "groups are" };
        line += &format!(" {} {groups} no longer declared and left as is (--prune clears them).", s.not_declared);
    }
    line
}

/// `2,000`: a count with its thousands grouped.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A share in whole percent, as the guard's refusal says it; to one decimal where the
/// whole number would read as the threshold itself (30.5% over a threshold of 30%).
fn share(safety: &SafetyVerdict) -> String {
    let hundredfold = safety.changed.saturating_mul(100);
    let whole = hundredfold / safety.recorded.max(1);
    let exact = hundredfold.is_multiple_of(safety.recorded.max(1));
    if whole == safety.threshold as usize && !exact {
        format!("{:.1}%", (safety.percent() * 10.0).floor() / 10.0)
    } else {
        format!("{whole}%")
    }
}

/// The safety guard's verdict in words, after `Safety guard: ` (which the caller
/// writes, styled for its output), with `force` written for that output:
/// `refused — 9 of the 14 recorded groups (64%) would be updated or deleted, …`.
fn safety_words(safety: &SafetyVerdict, force: &str) -> String {
    let Some(recorded) = (safety.recorded > 0).then_some(safety.recorded) else {
        return "approved — the lockfile records no group yet, so nothing is updated or deleted".into();
    };
    let groups = if recorded == 1 { "group" } else { "groups" };
    let what = format!(
        "{} of the {} recorded {groups} ({}) would be updated or deleted",
        count(safety.changed as u64),
        count(recorded as u64),
        share(safety)
    );
    let over = safety.changed.saturating_mul(100) > (safety.threshold as usize).saturating_mul(recorded);
    match (safety.verdict, over) {
        (Verdict::Refused, _) => format!(
            "refused — {what}, over the threshold of {}%; apply will refuse this plan without {force}",
            safety.threshold
        ),
        (Verdict::Approved, false) => format!("approved — {what}, within the threshold of {}%", safety.threshold),
        (Verdict::Approved, true) if safety.min_recorded > 0 => format!(
            "approved — {what}, over the threshold of {}%, but with fewer than {} recorded groups every plan is approved",
            safety.threshold, safety.min_recorded
        ),
        (Verdict::Approved, true) => {
            format!(
                "approved — {what}, over the threshold of {}%, but so few recorded groups approve any plan",
                safety.threshold
            )
        }
    }
}

/// The safety guard's verdict for a terminal or a log:
/// `Safety guard: refused — 9 of the 14 recorded groups (64%) would be updated or
/// deleted, over the threshold of 30%; apply will refuse this plan without --force.`
pub fn safety_line(safety: &SafetyVerdict) -> String {
    format!("Safety guard: {}.", safety_words(safety, "--force"))
}

/// Seconds for a person, rounded down (the figure is a least time): `19.9 s`, `3 min 20 s`.
fn least_time(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        return format!("{:.1} s", (seconds * 10.0).floor() / 10.0);
    }
    let whole = seconds.floor() as u64;
    match whole {
        ..3_600 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3_600, whole % 3_600 / 60),
    }
}

/// What applying the plan costs: `Cost: 2,000 API calls, at least 19.9 s at 100 calls/s.`
pub fn cost_line(cost: &Cost) -> String {
    match cost.calls {
        0 => "Cost: no API call.".into(),
        calls => format!(
            "Cost: {} API call{}, at least {} at {} calls/s.",
            count(calls),
            if calls == 1 { "" } else { "s" },
            least_time(cost.seconds_at_least()),
            count(u64::from(cost.rate_limit))
        ),
    }
}

/// `production (sdkappid 1400000000)`, or `sdkappid 1400000000` without environments;
/// the name (from `grattr.yaml`) written by `name` for the output at hand.
pub(crate) fn environment_label(env: &super::PlanEnvironment, name: fn(&str) -> String) -> String {
    match &env.name {
        Some(text) => format!("{} (sdkappid {})", name(text), env.sdkappid),
        None => format!("sdkappid {}", env.sdkappid),
    }
}

/// An environment name for terminal text.
pub(crate) fn text_name(name: &str) -> String {
    escape::text(name).into_owned()
}

fn header(plan: &Plan, name: fn(&str) -> String) -> String {
    let mut text = environment_label(&plan.environment, name);
    if plan.refresh {
        text += ", against the live state";
    }
    if let Some(targets) = &plan.targets {
        text += &format!(", limited to {} targeted group{}", targets.len(), if targets.len() == 1 { "" } else { "s" });
    }
    text
}

fn verb(action: Action) -> (&'static str, Style, &'static str) {
    match action {
        Action::Create => ("+", ADDED, "will be created"),
        Action::Update => ("~", CHANGED, "will be updated"),
        Action::Delete => ("-", REMOVED, "will be cleared and forgotten"),
    }
}

/// What an empty plan says it compared: the lockfile (named by `lockfile`, written
/// for the output at hand), or the live state read just now with `--refresh`. A
/// plan is offline unless refreshed: it never claims to have looked at live groups.
fn no_changes(plan: &Plan, lockfile: String) -> String {
    match plan.refresh {
        true => "No changes: the desired state matches the live state of the managed groups, read just now.".into(),
        false => format!("No changes: the desired state matches what {lockfile} records as applied."),
    }
}

/// The styles of the text rendering: ANSI styles, or none at all when colour is off.
#[derive(Debug, Clone, Copy)]
struct Palette {
    styled: bool,
}

impl Palette {
    /// Writes `text` in `style`.
    fn paint(self, out: &mut impl io::Write, style: Style, text: &[u8]) -> io::Result<()> {
        match self.styled {
            true => {
                write!(out, "{style}")?;
                out.write_all(text)?;
                write!(out, "{style:#}")
            }
            false => out.write_all(text),
        }
    }

    /// Starts writing in `style`.
    fn start(self, out: &mut impl io::Write, style: Style) -> io::Result<()> {
        if self.styled { write!(out, "{style}") } else { Ok(()) }
    }

    /// Ends writing in `style`.
    fn end(self, out: &mut impl io::Write, style: Style) -> io::Result<()> {
        if self.styled { write!(out, "{style:#}") } else { Ok(()) }
    }
}

/// The plan for a terminal or a log, with ANSI styles (strip them when colour is
/// off); `lockfile` is the lockfile the plan was made against. See [`write_text`].
pub fn text(plan: &Plan, lockfile: &Path) -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail, and every piece written is UTF-8.
    let _ = write_text(&mut out, plan, lockfile, true);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes the plan for a terminal or a log to `out`: with ANSI styles when `styled`,
/// else the same text without them (what stripping the styles would leave, without a
/// pass over the output). `lockfile` is the lockfile the plan was made against.
pub fn write_text(out: &mut impl io::Write, plan: &Plan, lockfile: &Path, styled: bool) -> io::Result<()> {
    let p = Palette { styled };
    p.paint(out, BOLD, b"grattr plan")?;
    writeln!(out, " for {}\n", header(plan, text_name))?;
    if plan.changes.is_empty() && plan.not_declared.is_empty() {
        writeln!(out, "{}\n", no_changes(plan, escape::path(lockfile)))?;
    }
    let causes = super::causes::causes(plan);
    if !causes.is_empty() {
        p.paint(out, BOLD, b"  Shared changes:")?;
        out.write_all(b"\n")?;
        for cause in &causes {
            writeln!(out, "    {}", cause.line(key_label, text_name))?;
        }
        out.write_all(b"\n")?;
    }
    // Changes come in runs from one file: its name is escaped once a run.
    let mut file: Option<(&Path, String)> = None;
    for change in &plan.changes {
        let (sign, style, what) = verb(change.action);
        out.write_all(b"  ")?;
        p.paint(out, style, sign.as_bytes())?;
        out.write_all(b" ")?;
        p.paint(out, BOLD, escape::text(change.group_id.as_str()).as_bytes())?;
        out.write_all(b" ")?;
        out.write_all(what.as_bytes())?;
        out.write_all(b"  ")?;
        p.start(out, DIM)?;
        out.write_all(b"(")?;
        match &change.source {
            Some(source) => {
                if file.as_ref().is_none_or(|(path, _)| *path != source.file.as_path()) {
                    file = Some((&source.file, escape::text(&source.file.to_string_lossy()).into_owned()));
                }
                let shown = file.as_ref().map_or("", |(_, shown)| shown.as_str());
                write!(out, "{shown}:{}", source.line)?;
            }
            None => out.write_all(b"no longer declared")?,
        }
        out.write_all(b")")?;
        p.end(out, DIM)?;
        out.write_all(b"\n")?;
        write_keys(out, p, change)?;
        if change.ownership == Ownership::Group && change.after.as_ref().is_some_and(AttributeSet::is_empty) {
            out.write_all(b"      ")?;
            p.paint(out, DIM, b"(no attributes: the group will be cleared)")?;
            out.write_all(b"\n")?;
        }
        for note in ownership_notes(change) {
            out.write_all(b"      ")?;
            p.paint(out, DIM, format!("# {note}").as_bytes())?;
            out.write_all(b"\n")?;
        }
        let unchanged = unchanged_count(change);
        if unchanged > 0 {
            let keys = if unchanged == 1 { "" } else { "s" };
            out.write_all(b"      ")?;
            p.paint(out, DIM, format!("# {unchanged} unchanged key{keys} not shown").as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.write_all(b"\n")?;
    }
    for orphan in &plan.not_declared {
        out.write_all(b"  ")?;
        p.paint(out, DIM, b"=")?;
        out.write_all(b" ")?;
        p.paint(out, BOLD, escape::text(orphan.group_id.as_str()).as_bytes())?;
        out.write_all(b" is no longer declared; left as is  ")?;
        let keys = orphan.before.len();
        p.paint(out, DIM, format!("({keys} key{} recorded)", if keys == 1 { "" } else { "s" }).as_bytes())?;
        out.write_all(b"\n\n")?;
    }
    p.paint(out, BOLD, summary_line(plan).as_bytes())?;
    out.write_all(b"\n")?;
    if let Some(safety) = &plan.safety {
        let style = match safety.verdict {
            Verdict::Approved => BOLD,
            Verdict::Refused => REMOVED.bold(),
        };
        p.paint(out, style, b"Safety guard:")?;
        writeln!(out, " {}.", safety_words(safety, "--force"))?;
    }
    if let Some(cost) = &plan.cost {
        writeln!(out, "{}", cost_line(cost))?;
    }
    Ok(())
}

/// The lines of the keys a change touches, `+ key = value`, keys padded to one width.
fn write_keys(out: &mut impl io::Write, p: Palette, change: &Change) -> io::Result<()> {
    const SPACES: &[u8] = &[b' '; 64];
    let empty = AttributeSet::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    let width = touched(before, after).map(|(key, ..)| label_width(key)).max().unwrap_or(0);
    for (key, old, new) in touched(before, after) {
        let (sign, style) = match (old, new) {
            (None, _) => (b"+", ADDED),
            (_, None) => (b"-", REMOVED),
            _ => (b"~", CHANGED),
        };
        out.write_all(b"      ")?;
        p.paint(out, style, sign)?;
        out.write_all(b" ")?;
        let shown = if bare_key(key) { Cow::Borrowed(key) } else { Cow::Owned(quoted(key)) };
        out.write_all(shown.as_bytes())?;
        let mut pad = width.saturating_sub(self::width(&shown));
        while pad > 0 {
            let run = pad.min(SPACES.len());
            out.write_all(&SPACES[..run])?;
            pad -= run;
        }
        out.write_all(b" = ")?;
        match (old, new) {
            (Some(old), Some(new)) => out.write_all(changed_value(old, new, p.styled).as_bytes())?,
            (Some(value), None) | (None, Some(value)) => escape::write_quoted(out, value)?,
            (None, None) => {}
        }
        if let Some(origin) = new.and(change.keys.source(key)).filter(|o| o.is_shared()) {
            out.write_all(b"  ")?;
            p.paint(out, DIM, format!("# {}", origin_label(origin, text_name)).as_bytes())?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// "template community", "overlay overlays/prod.yaml:3": a shared key's origin, compactly.
fn origin_label(origin: &KeyOrigin, name: fn(&str) -> String) -> String {
    match origin.kind {
        OriginKind::Overlay => format!("overlay {}:{}", name(&origin.file.to_string_lossy()), origin.line),
        _ => format!("{} {}", origin.kind.as_str(), name(origin.template.as_deref().unwrap_or(""))),
    }
}

/// The plan as JSON, in the documented schema; an error, never empty output, when
/// it cannot be written (a file name that is not UTF-8).
pub fn json(plan: &Plan) -> Result<String, serde_json::Error> {
    json_document(plan)
}

/// Writes [`json`] of the plan to `out` as it is serialized, without holding the
/// document in memory. A plan that cannot be written (a file name that is not UTF-8)
/// is an error before anything is written.
pub fn write_json(out: &mut impl io::Write, plan: &Plan) -> io::Result<()> {
    let unwritable = plan.changes.iter().any(|c| c.source.as_ref().is_some_and(|s| s.file.to_str().is_none()));
    if unwritable {
        // Serialized in memory first, so that the error comes before any output.
        return out.write_all(json(plan)?.as_bytes());
    }
    serde_json::to_writer_pretty(&mut *out, plan)?;
    out.write_all(b"\n")
}

/// A report as a JSON document: pretty, ending with a newline.
pub(crate) fn json_document(report: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// A code fence longer than any run of backticks in `body`.
fn fence_for(body: &str) -> String {
    "`".repeat(crate::escape::longest_backtick_run(body).max(2) + 1)
}

/// Longest value line shown in Markdown; the rest is cut and counted.
const MARKDOWN_VALUE: usize = 400;

/// A quoted value cut to [`MARKDOWN_VALUE`] bytes between whole escapes, saying how much was cut.
fn clip(text: &str, cut: &mut usize) -> String {
    if text.len() <= MARKDOWN_VALUE {
        return text.to_string();
    }
    let kept = escape::cut(text, MARKDOWN_VALUE);
    let rest = text.len() - kept.len();
    *cut += rest;
    format!("{kept}… ({rest} more bytes)")
}

fn markdown_section(change: &Change, cut: &mut usize) -> String {
    let (sign, _, what) = verb(change.action);
    collapsible_diff(sign, change.group_id.as_str(), what, &markdown_place(change), &markdown_body(change, true, cut))
}

/// Where a change's group is declared, as Markdown.
fn markdown_place(change: &Change) -> String {
    match &change.source {
        Some(source) => escape::markdown_code(&format!("{}:{}", source.file.display(), source.line)),
        None => "no longer declared".into(),
    }
}

/// The lines of a change's `diff` block. With `origins` false, only its keys'
/// lines (a cause's diff); else with where each shared key comes from and notes.
fn markdown_body(change: &Change, origins: bool, cut: &mut usize) -> String {
    let empty = AttributeSet::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    let mut body = String::new();
    // GitHub colours `-` and `+` lines of a diff block; a changed key is both.
    for (key, old, new) in touched(before, after) {
        let label = key_label(key);
        if let Some(old) = old {
            let _ = writeln!(body, "- {label} = {}", clip(&quoted(old), cut));
        }
        if let Some(new) = new {
            let _ = writeln!(body, "+ {label} = {}", clip(&quoted(new), cut));
            if let Some(origin) = change.keys.source(key).filter(|o| origins && o.is_shared()) {
                let _ = writeln!(body, "# {label}: from {}", origin_label(origin, key_label));
            }
        }
    }
    if !origins {
        // A cause's diff: the keys it changes and nothing of any one group.
        return body;
    }
    let unchanged = unchanged_count(change);
    if unchanged > 0 {
        let _ = writeln!(body, "# {unchanged} unchanged key{} not shown", if unchanged == 1 { "" } else { "s" });
    }
    if after.is_empty() && change.ownership == Ownership::Group {
        body += "# no attributes: the group will be cleared\n";
    }
    for note in ownership_notes(change) {
        let _ = writeln!(body, "# {note}");
    }
    body
}

/// The Markdown of the plan's causes: each cause's line, its one diff, and the
/// groups it explains folded under it. Returns it with the indices of the changes
/// it tells (which need no section of their own).
fn markdown_causes(plan: &Plan, cut: &mut usize) -> (String, std::collections::BTreeSet<usize>) {
    let mut out = String::new();
    let mut told = std::collections::BTreeSet::new();
    for cause in super::causes::causes(plan) {
        let _ = write!(out, "**{}**\n\n", cause.line(escape::markdown_code_span, escape::markdown_code_span));
        let Some(common) = super::causes::common_diff(plan, &cause.explained) else {
            out += "The values differ between groups: each group is shown below.\n\n";
            continue;
        };
        let body = markdown_body(common, false, cut);
        let fence = fence_for(&body);
        let _ = write!(out, "{fence}diff\n{body}{fence}\n\n");
        let n = cause.explained.len();
        let _ = write!(
            out,
            "<details><summary>{n} group{} with this change alone</summary>\n\n",
            if n == 1 { "" } else { "s" }
        );
        for (listed, &index) in cause.explained.iter().enumerate() {
            let change = &plan.changes[index];
            let line =
                format!("- {} · {}\n", escape::markdown_code_span(change.group_id.as_str()), markdown_place(change));
            if out.chars().count() + line.chars().count() > MARKDOWN_BUDGET / 2 {
                let _ = writeln!(out, "- … and {} more", n - listed);
                break;
            }
            out += &line;
        }
        out += "\n</details>\n\n";
        told.extend(cause.explained.iter().copied());
    }
    (out, told)
}

/// One group's collapsible Markdown section: a summary line, and `body` in a
/// `diff` block fenced longer than any run of backticks in it. `place` is Markdown
/// already; `body` holds only quoted or escaped data, one line per line.
pub(crate) fn collapsible_diff(sign: &str, group_id: &str, what: &str, place: &str, body: &str) -> String {
    let fence = fence_for(body);
    format!(
        "<details><summary><code>{sign}</code> {} {what} · {place}</summary>\n\n{fence}diff\n{body}{fence}\n\n</details>\n\n",
        escape::markdown_code(group_id),
    )
}

/// The plan as a pull-request comment: the summary first, then one collapsible
/// section per group. It stays under [`MARKDOWN_BUDGET`] characters by cutting long
/// values and, past the budget, whole sections, and says what it cut. `lockfile` is
/// the lockfile the plan was made against.
pub fn markdown(plan: &Plan, lockfile: &Path) -> String {
    let mut out =
        format!("### grattr plan for {}\n\n**{}**\n\n", header(plan, escape::markdown_code_span), summary_line(plan));
    // Beside the summary, so that a refusal is read before the groups.
    match &plan.safety {
        Some(safety) if safety.verdict == Verdict::Refused => {
            let _ = write!(out, "> **Safety guard: {}.**\n\n", safety_words(safety, "`--force`"));
        }
        Some(safety) => {
            let _ = write!(out, "Safety guard: {}.\n\n", safety_words(safety, "`--force`"));
        }
        None => {}
    }
    if let Some(cost) = &plan.cost {
        let _ = write!(out, "{}\n\n", cost_line(cost));
    }
    let mut cut_bytes = 0;
    let mut omitted = 0;
    let (causes, told) = markdown_causes(plan, &mut cut_bytes);
    out += &causes;
    for (index, change) in plan.changes.iter().enumerate() {
        if told.contains(&index) {
            continue;
        }
        let section = markdown_section(change, &mut cut_bytes);
        // Keep room for the closing notes.
        if out.chars().count() + section.chars().count() > MARKDOWN_BUDGET - 2_000 {
            omitted = (index..plan.changes.len()).filter(|i| !told.contains(i)).count();
            break;
        }
        out += &section;
    }
    if !plan.not_declared.is_empty() {
        let mut list = String::from("<details><summary>No longer declared, left as is</summary>\n\n");
        for orphan in &plan.not_declared {
            let line = format!("- {}\n", escape::markdown_code_span(orphan.group_id.as_str()));
            if out.chars().count() + list.chars().count() + line.chars().count() > MARKDOWN_BUDGET - 1_000 {
                list += "- …\n";
                break;
            }
            list += &line;
        }
        out += &list;
        out += "\n</details>\n\n";
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "> **{omitted} more group{} not shown** to stay under GitHub's comment limit. Run `grattr plan` for the full plan.\n",
            if omitted == 1 { "" } else { "s" }
        );
    }
    if cut_bytes > 0 {
        let _ = writeln!(
            out,
            "> Long values are shortened here ({cut_bytes} bytes cut). Run `grattr plan` for the full values.\n"
        );
    }
    if plan.changes.is_empty() && plan.not_declared.is_empty() {
        out += &no_changes(plan, escape::markdown_code_span(&lockfile.display().to_string()));
        out.push('\n');
    } else if plan.changes.is_empty() {
        out += "No changes to apply: the groups no longer declared are left as is.\n";
    }
    out
}

/// What a change's ownership means for the group, one note per line (keys are
/// written as labels, so nothing in them reaches the output raw).
fn ownership_notes(change: &Change) -> Vec<String> {
    let members = |keys: &Option<Vec<String>>| match keys {
        Some(keys) if !keys.is_empty() => {
            let labels: Vec<String> = keys.iter().map(|key| key_label(key)).collect();
            format!("{} key{} members wrote: {}", keys.len(), if keys.len() == 1 { "" } else { "s" }, labels.join(", "))
        }
        Some(_) => "no key members wrote".to_string(),
        None => "the keys members wrote (plan --refresh lists them)".to_string(),
    };
    let mut notes = Vec::new();
    match (change.ownership_from, change.ownership) {
        (Some(Ownership::Keys), Ownership::Group) => notes
            .push(format!("ownership keys → group: a full reset, which removes {}", members(&change.unmanaged_keys))),
        (Some(Ownership::Group), Ownership::Keys) => notes.push(if change.records_only() {
            "ownership group → keys: no call, only the record changes; from now on grattr owns only its keys"
                .to_string()
        } else {
            "ownership group → keys: from now on grattr owns only its keys".to_string()
        }),
        (_, Ownership::Keys) => {
            let what = match change.action {
                Action::Delete => "grattr deletes only its keys; the group is not cleared",
                _ if change.records_only() => "key ownership: no call, only the record changes",
                _ => "key ownership: only grattr's keys are written",
            };
            match &change.unmanaged_keys {
                Some(keys) if !keys.is_empty() => {
                    notes.push(format!("{what}; kept: {}", members(&change.unmanaged_keys)));
                }
                _ => notes.push(what.to_string()),
            }
        }
        _ => {}
    }
    notes
}
