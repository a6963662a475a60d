//! Adopting groups that exist (`grattr import`): the YAML that declares exactly
//! what is live, checked by reading it back, and the groups recorded as applied.

use super::{Workspace, WriteLock};
use crate::desired::templates::{Catalog, ResolvedTemplate};
use crate::desired::{emit, groups};
use crate::lockfile::Record;
use crate::model::{AttributeSet, GroupId, Ownership, SourceLocation};
use crate::state::StateError;
use std::path::Path;
use std::sync::Arc;

/// Groups asked to be imported that the desired state already declares: importing
/// them would declare them twice.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to import groups that are already declared; nothing was imported:\n{}",
    .0.iter().map(|(id, at)| format!("  {id} is declared at {at}")).collect::<Vec<_>>().join("\n")
)]
pub struct AlreadyDeclared(pub Vec<(GroupId, SourceLocation)>);

/// The YAML written would not declare exactly what was read: a bug of grattr's,
/// caught before anything is written.
#[derive(Debug, thiserror::Error)]
#[error(
    "internal error: the YAML written would not reproduce the live attributes exactly; nothing was imported. \
     Please report this.\n{}",
    .0.join("\n")
)]
pub struct NotReproduced(pub Vec<String>);

/// How `grattr import` writes the groups it adopts.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// What of the groups grattr takes over.
    pub ownership: Ownership,
    /// The ownership of a group whose entry and template say none (`grattr.yaml`'s).
    pub default_ownership: Ownership,
    /// The template each entry names, and every template, to read the entries back with.
    pub template: Option<(&'a ResolvedTemplate, &'a Catalog)>,
    /// Whether groups whose entries would be written identically are written once,
    /// as a set (`ids:`); the groups declared, and so recorded, are the same.
    pub sets: bool,
}

/// An entry naming a template whose resolved attributes are `template`, for a group
/// whose attributes are to be `adopted`: its own keys (those whose value differs from
/// the template's, or that the template lacks) and its `unset:` (the template's keys
/// the group lacks).
pub fn against_template(adopted: &AttributeSet, template: &AttributeSet) -> (AttributeSet, Vec<String>) {
    let own = adopted.iter().filter(|(key, value)| template.get(key) != Some(*value));
    let unset = template.keys().filter(|key| !adopted.contains_key(key)).map(str::to_string).collect();
    (own.map(|(key, value)| (key.to_string(), value.to_string())).collect(), unset)
}

/// The group file that declares `imported` exactly (their attributes, with
/// `layout.ownership`), for `path`, with a header naming the app; with `layout.sets`,
/// identical entries are written as one set. It is read back
/// first (with the templates, when written against one): unless it declares exactly
/// these groups, attributes and ownership, it is an error and nothing is to be written.
pub fn import_file(
    path: &Path,
    sdkappid: u64,
    imported: &[(GroupId, AttributeSet)],
    layout: &Layout<'_>,
) -> Result<String, NotReproduced> {
    // `ownership:` is written when what the entry would inherit is not what is adopted.
    let inherited = layout.template.and_then(|(template, _)| template.ownership).unwrap_or(layout.default_ownership);
    let said = (layout.ownership != inherited).then_some(layout.ownership);
    let (mut header, against) = match layout.template {
        None => (
            format!(
                "Imported by `grattr import` from sdkappid {sdkappid}: the live attributes, exactly.\nEdit freely: this file is now the desired state of these groups."
            ),
            Vec::new(),
        ),
        Some((template, _)) => (
            format!(
                "Imported by `grattr import` from sdkappid {sdkappid} against template {}: each group\nwrites the keys whose live value differs from the template's, and unsets the template's\nkeys it lacks; resolved, they are the live attributes, exactly.\nEdit freely: this file is now the desired state of these groups.",
                emit::double_quoted(&template.name)
            ),
            imported.iter().map(|(_, adopted)| against_template(adopted, &template.attributes)).collect(),
        ),
    };
    let entries: Vec<emit::Entry<'_>> = imported
        .iter()
        .enumerate()
        .map(|(index, (id, adopted))| match (layout.template, against.get(index)) {
            (Some((template, _)), Some((own, unset))) => {
                emit::Entry { id, ownership: said, template: Some(&template.name), attributes: own, unset }
            }
            _ => emit::Entry { id, ownership: said, template: None, attributes: adopted, unset: &[] },
        })
        .collect();
    let text = match layout.sets {
        true => {
            // Said before the last line ("Edit freely: …").
            let at = header.rfind('\n').map_or(0, |at| at + 1);
            header
                .insert_str(at, "Groups whose entries would be identical share one entry, whose `ids:` lists them.\n");
            emit::sets_file(&header, &entries)
        }
        false => emit::entries_file(&header, &entries),
    };
    let parsed = groups::parse_file(Arc::from(path), &text);
    let loaded = match layout.template {
        Some((_, catalog)) => catalog.load_with(parsed),
        None => groups::merge(vec![parsed]),
    };
    let errors: Vec<String> = loaded.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    let declared = &loaded.state.groups;
    let same = declared.len() == imported.len()
        && imported.iter().all(|(id, want)| {
            declared.get(id).is_some_and(|group| {
                let ownership = if group.ownership_written { group.ownership } else { layout.default_ownership };
                &group.attributes == want && ownership == layout.ownership
            })
        });
    match errors.is_empty() && same {
        true => Ok(text),
        false => Err(NotReproduced(errors)),
    }
}

impl Workspace {
    /// Refuses to import groups the desired state declares already.
    pub fn check_importable(&self, ids: &[GroupId]) -> Result<(), AlreadyDeclared> {
        let declared: Vec<(GroupId, SourceLocation)> =
            ids.iter().filter_map(|id| self.desired.groups.get(id).map(|g| (id.clone(), g.source.clone()))).collect();
        match declared.is_empty() {
            true => Ok(()),
            false => Err(AlreadyDeclared(declared)),
        }
    }

    /// Records `imported` as applied with `ownership`, as they are live (with key
    /// ownership: the keys adopted), as any run records: into the record's journal,
    /// then folded. The next plan has no change for them.
    pub async fn adopt(
        &mut self,
        lock: &mut WriteLock,
        imported: Vec<(GroupId, AttributeSet)>,
        ownership: Ownership,
    ) -> Result<(), StateError> {
        let records: Vec<Record> =
            imported.into_iter().map(|(group, attributes)| Record::Set { group, attributes, ownership }).collect();
        let recorder = lock.lease.recorder()?;
        for record in &records {
            recorder.record(record.clone());
        }
        recorder.finish().await?;
        let count = records.len();
        self.lockfile.sdkappid.get_or_insert(self.environment.sdkappid);
        self.lockfile.apply_records(records);
        lock.lease.ran(&mut self.lockfile, count).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::emit::double_quoted;
    use proptest::prelude::*;
    use std::fmt::Write as _;

    /// The templates `base` and `child` (extending it), as a group file would define them.
    fn catalog(base: &AttributeSet, child: &AttributeSet, ownership: Option<Ownership>) -> Catalog {
        let mut text = String::from("templates:\n  base:\n");
        if base.is_empty() && ownership.is_none() {
            text.truncate(text.len() - 1);
            text.push_str(" {}\n");
        }
        for (key, value) in base {
            let _ = writeln!(text, "    {}: {}", double_quoted(key), double_quoted(value));
        }
        if let Some(ownership) = ownership {
            let _ = writeln!(text, "    ownership: {ownership}");
        }
        text.push_str("  child:\n    extends: base\n");
        for (key, value) in child {
            let _ = writeln!(text, "    {}: {}", double_quoted(key), double_quoted(value));
        }
        let loaded = groups::merge(vec![groups::parse_file(Arc::from(Path::new("t.yaml")), &text)]);
        assert!(!loaded.has_errors(), "{:?}\n{text}", loaded.diagnostics);
        loaded.templates
    }

    fn set(pairs: &[(&str, &str)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn an_entry_against_a_template_writes_what_differs_and_unsets_what_is_missing() {
        let template = set(&[("rules", "be kind"), ("theme", "dark")]);
        let (own, unset) = against_template(&set(&[("theme", "gold"), ("banner", "hi")]), &template);
        assert_eq!((own, unset), (set(&[("banner", "hi"), ("theme", "gold")]), vec!["rules".to_string()]));
        assert_eq!(against_template(&template, &template), (AttributeSet::new(), Vec::new()));
    }

    #[test]
    fn a_hostile_template_name_is_quoted_where_it_is_written() {
        let name = "evil\n# x: \u{1b}[31m";
        let text = format!("templates:\n  {}:\n    theme: dark\n", double_quoted(name));
        let catalog = groups::merge(vec![groups::parse_file(Arc::from(Path::new("t.yaml")), &text)]).templates;
        let template = catalog.resolve(name).unwrap();
        let imported = vec![(GroupId::parse("g").unwrap(), set(&[("theme", "gold")]))];
        let layout = Layout {
            ownership: Ownership::Group,
            default_ownership: Ownership::Group,
            template: Some((&template, &catalog)),
            sets: false,
        };
        let written = import_file(Path::new("i.yaml"), 1, &imported, &layout).unwrap();
        assert!(written.contains("against template \"evil\\n# x: \\u001B[31m\": each group\n"), "{written}");
        assert!(written.contains("    template: \"evil\\n# x: \\u001B[31m\"\n"), "{written}");
        let unknown = catalog.resolve("x").unwrap_err().to_string();
        assert_eq!(unknown, "no group file defines a template \"x\"; the templates are \"evil\\n# x: \\u{1b}[31m\"");
    }

    fn key() -> impl Strategy<Value = String> {
        // Keys a template may have (not `extends` or `ownership`), some needing quotes.
        prop_oneof![Just("theme".to_string()), Just("no".to_string()), Just("#k".to_string()), "[a-c :\"-]{1,4}"]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![Just("dark".to_string()), Just("gold".to_string()), Just("".to_string()), "[ -~\n]{0,6}"]
    }

    fn attributes() -> impl Strategy<Value = AttributeSet> {
        prop::collection::btree_map(key(), value(), 0..5).prop_map(|map| map.into_iter().collect())
    }

    fn ownership() -> impl Strategy<Value = Ownership> {
        prop_oneof![Just(Ownership::Group), Just(Ownership::Keys)]
    }

    proptest! {
        /// Whatever is live and whatever the template holds, the entries written
        /// against it resolve to exactly what is adopted, with the ownership adopted.
        #[test]
        fn entries_against_a_template_resolve_to_what_is_adopted(
            base in attributes(),
            child in attributes(),
            said in prop::option::of(ownership()),
            adopted in ownership(),
            default in ownership(),
            use_child in any::<bool>(),
            live in prop::collection::vec(attributes(), 1..5),
        ) {
            let catalog = catalog(&base, &child, said);
            let template = catalog.resolve(if use_child { "child" } else { "base" }).unwrap();
            let imported: Vec<(GroupId, AttributeSet)> =
                live.into_iter().enumerate().map(|(i, a)| (GroupId::parse(&format!("g{i}")).unwrap(), a)).collect();
            let layout = Layout {
                ownership: adopted,
                default_ownership: default,
                template: Some((&template, &catalog)),
                sets: false,
            };
            let text = import_file(Path::new("imported.yaml"), 1, &imported, &layout);
            prop_assert!(text.is_ok(), "{:?}", text);
            let text = text.unwrap();
            // A group live exactly as the template is its id and `template:` alone.
            for (id, attributes) in &imported {
                if *attributes == template.attributes && adopted == said.unwrap_or(default) {
                    let entry = format!("  - id: {}\n    template: {}\n", id.as_str(), if use_child { "child" } else { "base" });
                    prop_assert!(text.contains(&entry), "{}", text);
                }
            }
        }

        /// With sets, with or without a template, whatever the ownership: groups
        /// whose entries are identical share one, and the file still declares exactly
        /// what is adopted (the read-back check passes).
        #[test]
        fn sets_resolve_to_what_is_adopted(
            base in attributes(),
            child in attributes(),
            said in prop::option::of(ownership()),
            adopted in ownership(),
            default in ownership(),
            template_used in prop::option::of(any::<bool>()),
            pool in prop::collection::vec(attributes(), 1..4),
            picks in prop::collection::vec(0..4usize, 1..20),
        ) {
            let catalog = catalog(&base, &child, said);
            let template = template_used.map(|child| catalog.resolve(if child { "child" } else { "base" }).unwrap());
            let imported: Vec<(GroupId, AttributeSet)> = picks
                .iter()
                .enumerate()
                .map(|(i, pick)| (GroupId::parse(&format!("g{i:02}")).unwrap(), pool[pick % pool.len()].clone()))
                .collect();
            let layout = Layout {
                ownership: adopted,
                default_ownership: default,
                template: template.as_ref().map(|t| (t, &catalog)),
                sets: true,
            };
            let text = import_file(Path::new("imported.yaml"), 1, &imported, &layout);
            prop_assert!(text.is_ok(), "{:?}", text);
            let text = text.unwrap();
            // Entries are identical exactly when the groups' adopted attributes are.
            let mut distinct: Vec<&AttributeSet> = Vec::new();
            for (_, attributes) in &imported {
                if !distinct.contains(&attributes) {
                    distinct.push(attributes);
                }
            }
            prop_assert_eq!(text.matches("\n  - id").count(), distinct.len(), "{}", text);
            prop_assert!(text.contains("share one entry, whose `ids:` lists them.\n# Edit freely"), "{}", text);
        }
    }
}
