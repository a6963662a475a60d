//! The renderings of a [`DriftReport`]: text, Markdown and JSON, as for plans.

use super::{DriftReport, GroupDrift, Status};
use crate::escape::{self, quoted};
use crate::model::AttributeSet;
use crate::plan::render::{changed_value, collapsible_diff, environment_label, json_document, key_label, text_name};
use anstyle::{AnsiColor, Style};
use std::fmt::Write;

const RED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const YELLOW: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const GREEN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

/// `Drift: 97 in sync, 1 pending, 1 drifted, 0 conflicts, 1 missing.`
pub fn summary_line(report: &DriftReport) -> String {
    let s = &report.summary;
    let mut line = format!(
        "Drift: {} in sync, {} pending, {} drifted, {} conflict{}, {} missing.",
        s.in_sync,
        s.pending,
        s.drifted,
        s.conflict,
        if s.conflict == 1 { "" } else { "s" },
        s.missing
    );
    if s.unreadable > 0 {
        line += &format!(" {} could not be read.", s.unreadable);
    }
    line
}

fn describe(status: Status) -> (&'static str, Style, &'static str) {
    match status {
        Status::InSync => ("=", GREEN, "is in sync"),
        Status::Pending => ("~", YELLOW, "has an unapplied change (apply will make it)"),
        Status::Drifted => ("!", RED, "drifted: changed outside grattr"),
        Status::Conflict => ("!", RED, "conflicts: changed outside grattr, and changed in the desired state too"),
        Status::Missing => ("?", RED, "is missing: the group does not exist"),
        Status::Unreadable => ("?", RED, "could not be read"),
    }
}

/// The keys that changed live, as `(sign, key, text)` lines.
fn live_lines(group: &GroupDrift, styled: bool) -> Vec<(char, String, String)> {
    let (Some(applied), Some(live)) = (&group.applied, &group.live) else { return Vec::new() };
    let c = &group.live_changes;
    let mut lines = Vec::new();
    for key in &c.added {
        lines.push(('+', key.clone(), format!("{} (added live)", quoted(&live[key]))));
    }
    for key in &c.removed {
        lines.push(('-', key.clone(), format!("{} (removed live)", quoted(&applied[key]))));
    }
    for key in &c.changed {
        lines.push((
            '~',
            key.clone(),
            format!("{} (applied → live)", changed_value(&applied[key], &live[key], styled)),
        ));
    }
    lines.sort_by(|a, b| a.1.cmp(&b.1));
    lines
}

/// The lines under a group's heading: what changed live, what is pending in the
/// desired state, and why it could not be read; `styled` for a terminal, else for Markdown.
fn detail_lines(group: &GroupDrift, styled: bool) -> Vec<String> {
    let mut lines: Vec<String> = live_lines(group, styled)
        .into_iter()
        .map(|(sign, key, text)| format!("{sign} {} = {text}", key_label(&key)))
        .collect();
    if matches!(group.status, Status::Pending | Status::Conflict) {
        lines.extend(pending_lines(group));
    }
    if let Some(unmanaged) = group.unmanaged_keys.as_ref().filter(|keys| !keys.is_empty()) {
        let note = format!(
            "{} key{} not managed by grattr (members wrote {}; grattr owns only its keys here)",
            unmanaged.len(),
            if unmanaged.len() == 1 { "" } else { "s" },
            if unmanaged.len() == 1 { "it" } else { "them" }
        );
        lines.push(if styled { format!("{DIM}{note}{DIM:#}") } else { format!("# {note}") });
    }
    if let Some(error) = &group.error {
        // The service's message may quote what it was sent.
        let error = escape::text(error);
        lines.push(if styled { format!("{DIM}{error}{DIM:#}") } else { format!("# {error}") });
    }
    lines
}

/// Where the group is declared, written by `file` for the output at hand.
fn place(group: &GroupDrift, file: fn(&str) -> String) -> String {
    group
        .source
        .as_ref()
        .map_or_else(|| "not declared".to_string(), |s| file(&format!("{}:{}", s.file.display(), s.line)))
}

/// The keys the desired state changes against what was applied, each saying what
/// happens to it in the desired state (what `apply` will then do live).
fn pending_lines(group: &GroupDrift) -> Vec<String> {
    let empty = AttributeSet::new();
    let desired = group.desired.as_ref().unwrap_or(&empty);
    let applied = group.applied.as_ref().unwrap_or(&empty);
    let mut keys: Vec<&str> = desired.keys().chain(applied.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| match (applied.get(key), desired.get(key)) {
            (None, Some(new)) => Some(format!("+ {} = {} (added to the desired state)", key_label(key), quoted(new))),
            (Some(old), None) => {
                Some(format!("- {} = {} (removed from the desired state)", key_label(key), quoted(old)))
            }
            (Some(old), Some(new)) if old != new => Some(format!(
                "~ {} = {} (changed in the desired state: applied → desired)",
                key_label(key),
                changed_value(old, new, false)
            )),
            _ => None,
        })
        .collect()
}

/// The report for a terminal or a log, with ANSI styles (strip them when colour is off).
pub fn text(report: &DriftReport) -> String {
    let mut out = format!("{BOLD}grattr drift{BOLD:#} for {}\n\n", environment_label(&report.environment, text_name));
    if report.groups.is_empty() {
        out += "No drift. Every managed group is live as applied.\n\n";
    }
    for group in &report.groups {
        let (sign, style, what) = describe(group.status);
        let _ = writeln!(
            out,
            "  {style}{sign}{style:#} {BOLD}{}{BOLD:#} {what}  {DIM}({}){DIM:#}",
            escape::text(group.group_id.as_str()),
            place(group, text_name)
        );
        for line in detail_lines(group, true) {
            let _ = writeln!(out, "      {line}");
        }
        out.push('\n');
    }
    out += &format!("{BOLD}{}{BOLD:#}\n", summary_line(report));
    out
}

/// The report as JSON, in the documented schema; an error, never empty output,
/// when it cannot be written.
pub fn json(report: &DriftReport) -> Result<String, serde_json::Error> {
    json_document(report)
}

/// The report as a pull-request or issue comment, within GitHub's size limit.
pub fn markdown(report: &DriftReport) -> String {
    let budget = crate::plan::render::MARKDOWN_BUDGET;
    let mut out = format!(
        "### grattr drift for {}\n\n**{}**\n\n",
        environment_label(&report.environment, escape::markdown_code_span),
        summary_line(report)
    );
    let mut omitted = 0;
    for (index, group) in report.groups.iter().enumerate() {
        let (sign, _, what) = describe(group.status);
        let mut body = String::new();
        for line in detail_lines(group, false) {
            let _ = writeln!(body, "{line}");
        }
        let section =
            collapsible_diff(sign, group.group_id.as_str(), what, &place(group, escape::markdown_code), &body);
        if out.chars().count() + section.chars().count() > budget - 1_000 {
            omitted = report.groups.len() - index;
            break;
        }
        out += &section;
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "> **{omitted} more group(s) not shown** to stay under GitHub's comment limit. Run `grattr drift` for the full report.\n"
        );
    }
    out
}
