//! How long `watch` takes to re-plan after one template changes, in a repository of
//! many templated groups: the index's update and the plan of the groups it says
//! changed, as the watcher times them (`planned_in_ms`). Then the same with an
//! overlay (which makes every change resolve the templated groups whole): a
//! template's patch changed, one group's patch changed, and (the overlays as they
//! were) one group of a file of 1,000 edited.
//!
//! ```text
//! cargo bench --bench watch_templates
//! GRATTR_SCALE_TEMPLATES=20   templates (default 20)
//! GRATTR_SCALE_GROUPS=5000    groups per template (default 5,000)
//! ```
//!
//! Run without `--bench` (as `cargo test --benches` does), it only checks a small
//! repository: 4 templates of 50 groups.

use grattr::desired::index::DesiredIndex;
use grattr::desired::overlays::OverlayPath;
use grattr::model::{AppliedGroup, GroupId, SourceLocation};
use grattr::plan::{self, PlanOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 20 templates (half of them extending another), and groups in files of 1,000,
/// each file using every template in turn, so that a template's users are spread
/// over every file.
fn templates_file(templates: usize, revision: usize) -> String {
    let mut text = String::from("templates:\n");
    for t in 0..templates {
        let _ = writeln!(text, "  t{t:02}:");
        if t % 2 == 1 {
            let _ = writeln!(text, "    extends: t{:02}", t - 1);
        }
        for k in 0..5 {
            let value = if t == 6 { format!("rev {revision}") } else { format!("value {t} {k}") };
            let _ = writeln!(text, "    k{t:02}{k}: \"{value}\"");
        }
    }
    text
}

/// Ten edits of one file; each time, what the index says changed is planned, and
/// `changes` groups are to update.
fn measure(
    index: &mut DesiredIndex,
    applied: &BTreeMap<GroupId, AppliedGroup>,
    what: &str,
    path: &Path,
    text: &dyn Fn(usize) -> String,
    changes: usize,
) {
    let mut samples = Vec::new();
    let mut replanned = 0;
    for revision in 1..=10 {
        std::fs::write(path, text(revision)).unwrap();
        let started = Instant::now();
        let affected = index.update([path.to_path_buf()]);
        let options = PlanOptions { targets: Some(affected.clone()), ..PlanOptions::default() };
        let plan = plan::diff(index.groups(), applied, &options);
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!index.has_errors(), "{:?}", index.diagnostics().first());
        assert_eq!(plan.changes.len(), changes, "{what}, revision {revision}");
        replanned = affected.len();
    }
    samples.sort_by(f64::total_cmp);
    eprintln!(
        "{what}: {replanned} groups re-planned, median {:.1} ms, min {:.1} ms, max {:.1} ms (10 edits)",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
    );
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let templates = if bench { env("GRATTR_SCALE_TEMPLATES", 20) } else { 8 };
    let per_template = if bench { env("GRATTR_SCALE_GROUPS", 5_000) } else { 50 };
    let total = templates * per_template;
    let dir = tempfile::tempdir().unwrap();
    let groups_dir = dir.path().join("groups");
    std::fs::create_dir_all(&groups_dir).unwrap();
    std::fs::write(groups_dir.join("_templates.yaml"), templates_file(templates, 0)).unwrap();
    let per_file = 1_000.min(total);
    // File `file` of groups, the group at `edited` (if any) with its own value at revision `revision`.
    let group_file = |file: usize, edited: Option<usize>, revision: usize| {
        let mut text = String::from("groups:\n");
        for i in file * per_file..((file + 1) * per_file).min(total) {
            let own = if Some(i) == edited { format!("edit {revision}") } else { i.to_string() };
            let _ = write!(
                text,
                "  - id: g{i:06}\n    template: t{:02}\n    attributes:\n      own: \"{own}\"\n",
                i % templates
            );
        }
        text
    };
    for file in 0..total.div_ceil(per_file) {
        std::fs::write(groups_dir.join(format!("g{file:04}.yaml")), group_file(file, None, 0)).unwrap();
    }

    let overlay = dir.path().join("overlays/env.yaml");
    std::fs::create_dir_all(overlay.parent().unwrap()).unwrap();
    std::fs::write(&overlay, "# patches nothing yet\n").unwrap();
    let at = SourceLocation { file: Arc::from(Path::new("grattr.yaml")), line: 1, column: 1 };
    let overlays = [OverlayPath { path: overlay.clone(), at }];
    let started = Instant::now();
    let mut index = DesiredIndex::load_with(&groups_dir, &overlays);
    let loaded_in = started.elapsed();
    assert!(!index.has_errors(), "{:?}", index.diagnostics().first());
    assert_eq!(index.groups().len(), total);
    let applied: BTreeMap<GroupId, AppliedGroup> = index
        .groups()
        .iter()
        .map(|(id, g)| (id.clone(), AppliedGroup::owned(g.attributes.clone(), g.ownership)))
        .collect();
    eprintln!(
        "{templates} templates x {per_template} groups ({total} groups, {} files): loaded in {:.0} ms",
        index.files(),
        loaded_in.as_secs_f64() * 1000.0,
    );

    // t06 and t07 (which extends it) change.
    let template_file = groups_dir.join("_templates.yaml");
    measure(
        &mut index,
        &applied,
        "one template changed",
        &template_file,
        &|revision| templates_file(templates, revision),
        2 * per_template,
    );
    std::fs::write(&template_file, templates_file(templates, 0)).unwrap();
    index.update([template_file]);
    // With overlays, each change resolves every templated group again, and plans those that changed.
    let patch_template = |revision: usize| format!("templates:\n  t06:\n    k060: \"env {revision}\"\n");
    measure(&mut index, &applied, "overlay: a template's patch changed", &overlay, &patch_template, 2 * per_template);
    let patch_group = |revision: usize| {
        format!("{}groups:\n  - id: g000001\n    attributes: {{own: \"env {revision}\"}}\n", patch_template(10))
    };
    measure(&mut index, &applied, "overlay: one group's patch changed", &overlay, &patch_group, 1);
    // A group file edited, the overlays as they were (and applied).
    let applied: BTreeMap<GroupId, AppliedGroup> = index
        .groups()
        .iter()
        .map(|(id, g)| (id.clone(), AppliedGroup::owned(g.attributes.clone(), g.ownership)))
        .collect();
    let edited = |revision: usize| group_file(0, Some(per_file / 2), revision);
    measure(
        &mut index,
        &applied,
        "overlay in place: a file of groups edited",
        &groups_dir.join("g0000.yaml"),
        &edited,
        1,
    );
}
