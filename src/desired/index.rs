//! The desired state kept up to date file by file, for `watch`: a change to one
//! file re-reads that file only, and says which groups it may have changed, so
//! that a repository of 100,000 groups re-plans in milliseconds.

use super::diagnostic::Diagnostic;
use super::groups::{self, Entry, FileGroups};
use super::overlays::{OverlayPath, Overlays};
use super::templates::{self, Resolution};
use crate::model::{DesiredGroup, GroupId, Ownership};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Every group file under a directory, parsed, and the desired state they make.
#[derive(Debug, Default)]
pub struct DesiredIndex {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileGroups>,
    /// Every declaration of every id, by file (files in path order; a file may declare an id twice).
    declared: HashMap<GroupId, BTreeMap<PathBuf, Vec<crate::model::SourceLocation>>>,
    /// The valid groups declared exactly once.
    groups: BTreeMap<GroupId, DesiredGroup>,
    /// A problem with the directory itself.
    dir_error: Option<Diagnostic>,
    /// The ownership of groups whose file does not say (`grattr.yaml`'s `ownership:`).
    default_ownership: Ownership,
    /// The groups using templates or patched by overlays, resolved, and what
    /// resolution found, by file.
    resolved: BTreeMap<PathBuf, Resolution>,
    /// The overlays of the environment, as listed.
    overlay_paths: Vec<OverlayPath>,
    /// The overlays, as read.
    overlays: Overlays,
    /// What resolution found in each overlay file.
    overlays_found: Vec<Vec<Diagnostic>>,
}

impl DesiredIndex {
    /// Reads every group file under `dir`.
    pub fn load(dir: &Path) -> DesiredIndex {
        DesiredIndex::load_with(dir, &[])
    }

    /// Reads every group file under `dir`, and the overlays listed.
    pub fn load_with(dir: &Path, overlays: &[OverlayPath]) -> DesiredIndex {
        let mut index =
            DesiredIndex { dir: dir.to_path_buf(), overlay_paths: overlays.to_vec(), ..DesiredIndex::default() };
        index.rescan();
        index
    }

    /// Reads the whole directory and the overlays again (after a configuration
    /// reload, or when events may have been lost); returns the ids that may have changed.
    pub fn rescan(&mut self) -> BTreeSet<GroupId> {
        let mut paths: BTreeSet<PathBuf> = self.files.keys().cloned().collect();
        match groups::list_files(&self.dir) {
            Ok(files) => {
                self.dir_error = None;
                paths.extend(files);
            }
            Err(diagnostic) => self.dir_error = Some(diagnostic),
        }
        self.overlays = Overlays::read(&self.overlay_paths, &self.dir);
        self.update_files(paths, true)
    }

    /// Takes the overlays the configuration lists (at start, and when it is
    /// reloaded); returns the ids whose desired state may have changed.
    pub fn set_overlays(&mut self, overlays: &[OverlayPath]) -> BTreeSet<GroupId> {
        if overlays == self.overlay_paths.as_slice() {
            return BTreeSet::new();
        }
        self.overlay_paths = overlays.to_vec();
        self.overlays = Overlays::read(&self.overlay_paths, &self.dir);
        self.update_files(BTreeSet::new(), true)
    }

    /// Whether a change to `path` may change the overlays: it is one of them, lies
    /// in one, or holds one.
    pub fn is_overlay(&self, path: &Path) -> bool {
        self.overlay_paths.iter().any(|overlay| path.starts_with(&overlay.path) || overlay.path.starts_with(path))
    }

    /// Takes note of changes to `paths` (files or directories, created, changed,
    /// renamed or deleted; group files or overlays) and returns the ids whose desired
    /// state may have changed.
    pub fn update(&mut self, paths: impl IntoIterator<Item = PathBuf>) -> BTreeSet<GroupId> {
        let mut touched = BTreeSet::new();
        let mut overlays_changed = false;
        for path in paths {
            if self.is_overlay(&path) {
                overlays_changed = true;
            }
            // Files we had below it: changed, moved away or deleted.
            touched.extend(self.files.keys().filter(|f| f.starts_with(&path)).cloned());
            if path.is_dir() {
                if let Ok(files) = groups::list_files_under(&self.dir, &path) {
                    touched.extend(files.into_iter().filter(|f| self.in_visible_dir(f)));
                }
            } else if self.in_visible_dir(&path) {
                touched.insert(path);
            }
        }
        if overlays_changed {
            // Overlays are few and small: read again whole.
            self.overlays = Overlays::read(&self.overlay_paths, &self.dir);
        }
        self.update_files(touched, overlays_changed)
    }

    /// Whether a path is a group file grattr reads: below the directory, not in a
    /// hidden directory, not hidden, not an editor leftover.
    fn visible(&self, path: &Path) -> bool {
        self.in_visible_dir(path) && path.file_name().is_some_and(|name| groups::is_group_file(&name.to_string_lossy()))
    }

    /// Whether a path lies below the directory, not in a hidden directory, and is not hidden itself.
    fn in_visible_dir(&self, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix(&self.dir) else { return false };
        let mut parts = relative.components().peekable();
        while let Some(part) = parts.next() {
            let name = part.as_os_str().to_string_lossy();
            if parts.peek().is_some() {
                if name.starts_with('.') {
                    return false;
                }
            } else {
                return !name.starts_with('.');
            }
        }
        false
    }

    /// Reads `paths` again; with `overlays_changed`, every group that templates or
    /// overlays may change is resolved again.
    fn update_files(&mut self, paths: BTreeSet<PathBuf>, overlays_changed: bool) -> BTreeSet<GroupId> {
        let mut affected = BTreeSet::new();
        let mut templates_changed = overlays_changed;
        // A file declaring a group an overlay patches resolves it again, like a template's.
        let patched: HashSet<GroupId> = self.overlays.patched_ids().into_iter().cloned().collect();
        let declares_patched = |file: &FileGroups| file.declared.iter().any(|(id, _)| patched.contains(id));
        for path in paths {
            // The rule a whole load follows: group files are read, refused entries (a
            // symlink leading outside, a FIFO) reported, the rest left alone.
            let fresh = match groups::entry(&self.dir, &path) {
                Entry::GroupFile if self.visible(&path) => Some(groups::read_file(&self.dir, &path)),
                Entry::Refused(diagnostic) if self.in_visible_dir(&path) => {
                    Some(FileGroups { diagnostics: vec![diagnostic], ..FileGroups::default() })
                }
                _ => None,
            };
            let depends = |file: &FileGroups| file.has_templates() || declares_patched(file);
            templates_changed |= fresh.as_ref().is_some_and(depends) || self.files.get(&path).is_some_and(depends);
            let old = match fresh {
                Some(fresh) => {
                    affected.extend(fresh.declared.iter().map(|(id, _)| id.clone()));
                    let mut places: HashMap<&GroupId, Vec<crate::model::SourceLocation>> = HashMap::new();
                    for (id, at) in &fresh.declared {
                        places.entry(id).or_default().push(at.clone());
                    }
                    for (id, at) in places {
                        self.declared.entry(id.clone()).or_default().insert(path.clone(), at);
                    }
                    let old = self.files.insert(path.clone(), fresh);
                    // Ids the file no longer declares.
                    if let Some(old) = &old {
                        let now: BTreeSet<GroupId> =
                            self.files[&path].declared.iter().map(|(id, _)| id.clone()).collect();
                        for (id, _) in &old.declared {
                            if !now.contains(id) {
                                self.forget(id, &path);
                            }
                        }
                    }
                    old
                }
                None => {
                    let old = self.files.remove(&path);
                    if let Some(old) = &old {
                        for (id, _) in &old.declared {
                            self.forget(id, &path);
                        }
                    }
                    old
                }
            };
            if let Some(old) = old {
                affected.extend(old.declared.into_iter().map(|(id, _)| id));
            }
        }
        if templates_changed {
            self.resolve(&mut affected);
        }
        for id in &affected {
            self.settle(id);
        }
        affected
    }

    /// Resolves every group that uses a template or that an overlay patches again (a
    /// template may be defined in any file, and used in any other; an overlay may
    /// patch any group), adding the ids resolved before and now to `affected`.
    fn resolve(&mut self, affected: &mut BTreeSet<GroupId>) {
        for resolution in self.resolved.values() {
            affected.extend(resolution.groups.iter().map(|(id, _)| id.clone()));
            affected.extend(resolution.patched.iter().cloned());
        }
        let files: Vec<&FileGroups> = self.files.values().collect();
        let resolved = templates::resolve(&files, &self.overlays);
        self.overlays_found = resolved.overlays;
        self.resolved =
            self.files.keys().cloned().zip(resolved.files).filter(|(_, r)| *r != Resolution::default()).collect();
        for file in self.files.values() {
            affected.extend(file.templated.iter().flat_map(|entry| entry.ids.iter().map(|(id, _)| id.clone())));
        }
        for resolution in self.resolved.values() {
            affected.extend(resolution.patched.iter().cloned());
        }
    }

    fn forget(&mut self, id: &GroupId, path: &Path) {
        if let Some(places) = self.declared.get_mut(id) {
            places.remove(path);
            if places.is_empty() {
                self.declared.remove(id);
            }
        }
    }

    /// Recomputes one id's desired group from its declarations.
    fn settle(&mut self, id: &GroupId) {
        let only = match self.declared.get(id) {
            Some(places) if places.values().map(Vec::len).sum::<usize>() == 1 => places.keys().next().cloned(),
            _ => None,
        };
        let group = only.and_then(|path| {
            // Resolved first: a group an overlay patches is declared plain, and resolved too.
            let resolution = self.resolved.get(&path);
            if let Some((_, group)) = resolution.into_iter().flat_map(|r| &r.groups).find(|(g, _)| g == id) {
                return Some(group.clone());
            }
            if resolution.is_some_and(|r| r.patched.contains(id)) {
                return None;
            }
            let plain = self.files.get(&path).map(|file| &file.groups);
            plain.into_iter().flatten().find(|(g, _)| g == id).map(|(_, group)| group.clone())
        });
        match group {
            Some(mut group) => {
                if !group.ownership_written {
                    group.ownership = self.default_ownership;
                }
                self.groups.insert(id.clone(), group);
            }
            None => {
                self.groups.remove(id);
            }
        }
    }

    /// Takes `grattr.yaml`'s default ownership (at start, and when it is reloaded);
    /// returns the ids whose ownership it changed.
    pub fn set_default_ownership(&mut self, ownership: Ownership) -> BTreeSet<GroupId> {
        if ownership == self.default_ownership {
            return BTreeSet::new();
        }
        self.default_ownership = ownership;
        let mut changed = BTreeSet::new();
        for (id, group) in self.groups.iter_mut().filter(|(_, g)| !g.ownership_written) {
            group.ownership = ownership;
            changed.insert(id.clone());
        }
        changed
    }

    /// The valid groups declared exactly once. Only to be applied when [`DesiredIndex::has_errors`] is false.
    pub fn groups(&self) -> &BTreeMap<GroupId, DesiredGroup> {
        &self.groups
    }

    /// How many files are read.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Every problem, in file order: the files' own, and groups declared twice.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut by_file: BTreeMap<&Path, Vec<Diagnostic>> = BTreeMap::new();
        for (path, file) in &self.files {
            by_file.entry(path).or_default().extend(file.diagnostics.iter().cloned());
        }
        for (path, resolution) in &self.resolved {
            by_file.entry(path).or_default().extend(resolution.diagnostics.iter().cloned());
        }
        for (id, places) in &self.declared {
            let mut places = places.iter().flat_map(|(path, ats)| ats.iter().map(move |at| (path, at)));
            let Some((_, first)) = places.next() else { continue };
            for (path, at) in places {
                by_file.entry(path).or_default().push(groups::declared_twice(id, at.clone(), first));
            }
        }
        let mut all: Vec<Diagnostic> = self.dir_error.iter().cloned().collect();
        for (_, mut diagnostics) in by_file {
            diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
            all.extend(diagnostics);
        }
        // A whole load resolves nothing without the directory.
        let found: &[Vec<Diagnostic>] = if self.dir_error.is_some() { &[] } else { &self.overlays_found };
        all.extend(self.overlays.diagnostics(found));
        all
    }

    /// Whether anything stops the desired state from being applied.
    pub fn has_errors(&self) -> bool {
        self.dir_error.is_some()
            || self.declared.values().any(|places| places.values().map(Vec::len).sum::<usize>() > 1)
            || self.files.values().any(|f| f.diagnostics.iter().any(Diagnostic::is_error))
            || self.resolved.values().any(|r| r.diagnostics.iter().any(Diagnostic::is_error))
            || self.overlays.diagnostics(&self.overlays_found).iter().any(Diagnostic::is_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn group(id: &str, value: &str) -> String {
        format!("  - id: {id}\n    attributes:\n      k: \"{value}\"\n")
    }

    #[test]
    fn follows_changes_file_by_file_like_a_full_load() {
        let dir = tempfile::tempdir().unwrap();
        let groups_dir = dir.path().join("groups");
        let a = write(&groups_dir, "a.yaml", &format!("groups:\n{}{}", group("one", "1"), group("two", "2")));
        let b = write(&groups_dir, "sub/b.yaml", &format!("groups:\n{}", group("three", "3")));
        let mut index = DesiredIndex::load(&groups_dir);
        assert_eq!(index.groups().len(), 3);
        assert_eq!(index.files(), 2);

        // Change one value and drop a group: only that file's ids are affected.
        std::fs::write(&a, format!("groups:\n{}", group("one", "changed"))).unwrap();
        let affected = index.update([a.clone()]);
        assert_eq!(affected.iter().map(GroupId::as_str).collect::<Vec<_>>(), vec!["one", "two"]);
        assert_eq!(&index.groups()[&GroupId::parse("one").unwrap()].attributes["k"], "changed");
        assert!(!index.groups().contains_key(&GroupId::parse("two").unwrap()));

        // A duplicate across files is an error, and neither copy is applied.
        let c = write(&groups_dir, "c.yaml", &format!("groups:\n{}", group("three", "other")));
        index.update([c.clone()]);
        assert!(index.has_errors());
        assert!(index.diagnostics()[0].message.contains("declared twice"), "{:?}", index.diagnostics());
        std::fs::remove_file(&c).unwrap();
        index.update([c]);
        assert!(!index.has_errors());
        assert_eq!(&index.groups()[&GroupId::parse("three").unwrap()].attributes["k"], "3");

        // A directory removed, and an editor's leftovers ignored.
        std::fs::remove_dir_all(b.parent().unwrap()).unwrap();
        write(&groups_dir, ".a.yaml.swp", "garbage");
        write(&groups_dir, "a.yaml~", "garbage");
        let affected =
            index.update([groups_dir.join("sub"), groups_dir.join(".a.yaml.swp"), groups_dir.join("a.yaml~")]);
        assert_eq!(affected.iter().map(GroupId::as_str).collect::<Vec<_>>(), vec!["three"]);
        assert_eq!(index.groups().len(), 1);

        // A group declared twice in one file.
        std::fs::write(&a, format!("groups:\n{}{}", group("one", "1"), group("one", "2"))).unwrap();
        index.update([a.clone()]);
        assert!(index.has_errors());
        assert!(!index.groups().contains_key(&GroupId::parse("one").unwrap()));
        let fresh = super::super::load(&groups_dir);
        assert_eq!(fresh.diagnostics, index.diagnostics());
        std::fs::write(&a, format!("groups:\n{}", group("one", "1"))).unwrap();
        index.update([a.clone()]);

        // Whatever happened, it equals a fresh load.
        let fresh = super::super::load(&groups_dir);
        assert_eq!(&fresh.state.groups, index.groups());
        assert_eq!(fresh.diagnostics, index.diagnostics());
    }
}
