//! The desired state kept up to date file by file, for `watch`: a change to one
//! file re-reads that file only, and says which groups it may have changed, so
//! that a repository of 100,000 groups re-plans in milliseconds.
//!
//! Groups that use templates depend on other files. A change to a file that
//! defines or uses templates re-resolves only the groups whose resolution can
//! differ: those of the file itself, and those using a template whose first
//! definition changed (its keys, `extends`, ownership or validity, or it was added
//! or removed), directly or through `extends`. A definition that only moved (a line
//! added above it, or to another file) changes no group's attributes: its groups are
//! resolved again, for the provenance of their keys (and diagnostics) that names its
//! place, but not said to have changed, so `watch` does not plan them. What the
//! definitions say about each other (a name defined twice, a cycle, a template no
//! group uses) is checked again in full, which takes time in proportion to the
//! templates, not the groups.
//!
//! Overlays are read whole on any change to them (they are few and small). A
//! template's overlay patches count as part of its definition: a change to them
//! re-resolves the template's users, as a change to the template does; a change to
//! the group patches re-resolves the files declaring the groups patched, before or
//! now. What the overlays' group patches' `unset:` removed is kept for each
//! resolved entry, so that the warning about one that removes nothing is found
//! again without resolving every group. Groups resolved again because a template or
//! an overlay changed are compared with what they were, and said to have changed
//! only if they did.

use super::diagnostic::Diagnostic;
use super::groups::{self, Entry, FileGroups};
use super::overlays::{OverlayPath, Overlays, Patch};
use super::templates::{self, ByName, FileResolver, Patching, Template, UnsetEffect};
use crate::model::{DesiredGroup, GroupId, Ownership};
use rayon::prelude::*;
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
    /// The templates, and the groups using them or patched by overlays, resolved.
    templates: TemplateIndex,
    /// The overlays of the environment, as listed.
    overlay_paths: Vec<OverlayPath>,
    /// The overlays, as read.
    overlays: Overlays,
    /// The group files whose last read failed for a reason that passes (too many open
    /// files): read again through [`DesiredIndex::transient_paths`], as no event will come.
    transient: BTreeSet<PathBuf>,
    /// Listing a directory failed for a reason that passes: the next
    /// [`DesiredIndex::transient_paths`] asks for the whole directory again.
    transient_listing: bool,
}

/// What template resolution found, kept so that a change re-resolves only what it can affect.
#[derive(Debug, Default)]
struct TemplateIndex {
    /// The files that define templates.
    defining: BTreeSet<PathBuf>,
    /// Each name `template:` writes, and the files that write it.
    users: HashMap<String, BTreeSet<PathBuf>>,
    /// Each name's first definition, as last resolved.
    first: HashMap<String, Template>,
    /// The problems of the definitions, by the file they are in.
    definitions: BTreeMap<PathBuf, Vec<Diagnostic>>,
    /// The groups using templates (or patched by overlays), resolved, by file.
    files: BTreeMap<PathBuf, FileResolution>,
    /// Each template's overlay patches, as last resolved.
    template_patches: HashMap<String, Vec<Patch>>,
    /// The groups overlays patch, as last resolved.
    patched: HashSet<GroupId>,
    /// What resolution found in each overlay file.
    overlays_found: Vec<Vec<Diagnostic>>,
}

/// One file's groups that use templates (or that overlays patch), resolved.
#[derive(Debug, Default)]
struct FileResolution {
    /// Its `template:` names no file defines (resolved whole: every problem resolution found in it).
    unknown: Vec<Diagnostic>,
    /// What resolving each of its entries that use templates found, as `FileGroups::templated`
    /// lists them.
    found: Vec<Vec<Diagnostic>>,
    /// What the `unset:` of overlay group entries did to each of those entries' groups.
    effects: Vec<UnsetEffect>,
    /// The groups resolved, by id.
    groups: HashMap<GroupId, DesiredGroup>,
    /// Groups declared without a template that overlays patch: their declaration
    /// gives way to their resolved form (absent when patching them is an error).
    patched: HashSet<GroupId>,
    /// What resolving those found.
    patched_found: Vec<Diagnostic>,
    /// What the `unset:` of overlay group entries did to them.
    patched_effect: UnsetEffect,
}

impl FileResolution {
    fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.unknown.iter().chain(self.found.iter().flatten()).chain(&self.patched_found)
    }

    /// Resolves every group of `file` that uses a template or that an overlay
    /// patches, in place of what was, adding their ids to `ids`.
    fn resolve_all(&mut self, file: &FileGroups, resolver: &FileResolver<'_, '_>, ids: &mut BTreeSet<GroupId>) {
        self.found.clear();
        self.effects.clear();
        self.groups.clear();
        for entry in &file.templated {
            let mut effect = UnsetEffect::new();
            let (resolved, found) = resolver.resolve(entry, &mut effect);
            self.groups.extend(resolved);
            self.found.push(found);
            self.effects.push(effect);
            ids.extend(entry.ids.iter().map(|(id, _)| id.clone()));
        }
        self.patched_found.clear();
        self.patched_effect.clear();
        let (resolved, patched) = resolver.resolve_patched(file, &mut self.patched_effect, &mut self.patched_found);
        self.groups.extend(resolved);
        ids.extend(patched.iter().cloned());
        self.patched = patched.into_iter().collect();
    }

    /// Whether it holds anything: otherwise the file is dropped.
    fn holds_anything(&self) -> bool {
        !self.unknown.is_empty() || !self.found.is_empty() || !self.patched.is_empty()
    }
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
        let (listed, transient) = groups::list_files_noting_transient(&self.dir, &self.dir);
        self.transient_listing = transient;
        match listed {
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

    /// How many group files could not be read for a reason that passes (see [`DesiredIndex::transient_paths`]).
    pub fn transient_failures(&self) -> usize {
        self.transient.len() + usize::from(self.transient_listing)
    }

    /// What to read again, as no file event will come for it: the group files whose
    /// last read failed for a reason that passes (too many open files, no memory), or
    /// `None` when listing the directory did (then every file). The caller reads them with
    /// [`DesiredIndex::update`] (or [`DesiredIndex::rescan`]), which notes each result.
    pub fn transient_paths(&self) -> Option<BTreeSet<PathBuf>> {
        (!self.transient_listing).then(|| self.transient.clone())
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
                match groups::list_files_noting_transient(&self.dir, &path) {
                    (Ok(files), _) => touched.extend(files.into_iter().filter(|f| self.in_visible_dir(f))),
                    // Its files would be missed until the next change: read it all again soon.
                    (Err(_), true) => self.transient_listing = true,
                    (Err(_), false) => {}
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

    /// Reads `paths` again, and resolves again what templates (and, with
    /// `overlays_changed`, the overlays) may change.
    fn update_files(&mut self, paths: BTreeSet<PathBuf>, overlays_changed: bool) -> BTreeSet<GroupId> {
        let mut affected = BTreeSet::new();
        // A file declaring a group an overlay patches depends on the overlays, like a template's users.
        let patched: HashSet<GroupId> = match self.overlays.has_patches() {
            true => self.overlays.patched_ids().into_iter().cloned().collect(),
            false => HashSet::new(),
        };
        let depends =
            |file: &FileGroups| file.has_templates() || file.declared.iter().any(|(id, _)| patched.contains(id));
        // The files that define or use templates (or declare a patched group), before or now.
        let mut templated: BTreeSet<PathBuf> = BTreeSet::new();
        let read: Vec<PathBuf> = paths.into_iter().collect();
        // The rule a whole load follows: group files are read (in parallel, as a whole
        // load reads them), refused entries (a symlink leading outside, a FIFO)
        // reported, the rest left alone.
        let fresh: Vec<(Option<FileGroups>, bool)> = read
            .par_iter()
            .map(|path| match groups::entry(&self.dir, path) {
                Entry::GroupFile if self.visible(path) => {
                    let (file, transient) = groups::read_file_noting_transient(&self.dir, path);
                    (Some(file), transient)
                }
                Entry::Refused(diagnostic) if self.in_visible_dir(path) => {
                    (Some(FileGroups { diagnostics: vec![diagnostic], ..FileGroups::default() }), false)
                }
                _ => (None, false),
            })
            .collect();
        for (path, (fresh, transient)) in read.iter().cloned().zip(fresh) {
            if transient {
                self.transient.insert(path.clone());
            } else {
                self.transient.remove(&path);
            }
            if fresh.as_ref().is_some_and(depends) || self.files.get(&path).is_some_and(depends) {
                templated.insert(path.clone());
            }
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
            if templated.contains(&path) {
                self.templates.note(&path, old.as_ref(), self.files.get(&path));
            }
            if let Some(old) = old {
                affected.extend(old.declared.into_iter().map(|(id, _)| id));
            }
        }
        // Groups whose provenance changed but not what is planned for them: settled, not returned.
        let mut restated = BTreeSet::new();
        // Groups resolved again because a template or an overlay changed: settled, and
        // returned only if what is planned for them changed.
        let mut compared = BTreeSet::new();
        if overlays_changed || !templated.is_empty() {
            let mut said = Said { affected: &mut affected, restated: &mut restated, compared: &mut compared };
            let change = Change { files: &templated, overlays: &self.overlays, overlays_changed };
            self.templates.resolve(&self.files, &self.declared, &change, &mut said);
        }
        // The plain groups of the files read again, by id: found without a scan of their file.
        let mut plain: Plain<'_> = HashMap::new();
        for (path, file) in read.iter().filter_map(|path| self.files.get_key_value(path)) {
            plain.extend(file.groups.iter().map(|(id, group)| (id, (path, group))));
        }
        let mut settled: Vec<(GroupId, Option<DesiredGroup>)> = Vec::new();
        let restated = restated.into_iter().filter(|id| !affected.contains(id) && !compared.contains(id));
        for id in affected.iter().cloned().chain(restated) {
            let now = self.settled(&id, &plain);
            settled.push((id, now));
        }
        // Compared with what they were before this change.
        let mut changed = Vec::new();
        for id in compared.into_iter().filter(|id| !affected.contains(id)) {
            let now = self.settled(&id, &plain);
            if !same_plan(self.groups.get(&id), now.as_ref()) {
                changed.push(id.clone());
            }
            settled.push((id, now));
        }
        affected.extend(changed);
        for (id, group) in settled {
            match group {
                Some(group) => self.groups.insert(id, group),
                None => self.groups.remove(&id),
            };
        }
        affected
    }

    fn forget(&mut self, id: &GroupId, path: &Path) {
        if let Some(places) = self.declared.get_mut(id) {
            places.remove(path);
            if places.is_empty() {
                self.declared.remove(id);
            }
        }
    }

    /// One id's desired group, from its declarations (`plain`: plain groups of some
    /// files, by id, found there rather than by a scan of their file).
    fn settled(&self, id: &GroupId, plain: &Plain<'_>) -> Option<DesiredGroup> {
        let path = match self.declared.get(id) {
            Some(places) if places.values().map(Vec::len).sum::<usize>() == 1 => places.keys().next()?,
            _ => return None,
        };
        // Resolved first: a group an overlay patches is declared plain, and resolved too.
        let resolution = self.templates.files.get(path);
        let mut group = match resolution.and_then(|resolution| resolution.groups.get(id)) {
            Some(group) => group.clone(),
            None if resolution.is_some_and(|resolution| resolution.patched.contains(id)) => return None,
            None => match plain.get(id) {
                Some((file, group)) if *file == path => (*group).clone(),
                _ => {
                    let groups = self.files.get(path).map(|file| &file.groups);
                    groups.into_iter().flatten().find(|(g, _)| g == id).map(|(_, group)| group.clone())?
                }
            },
        };
        if !group.ownership_written {
            group.ownership = self.default_ownership;
        }
        Some(group)
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
        for (path, diagnostics) in &self.templates.definitions {
            by_file.entry(path).or_default().extend(diagnostics.iter().cloned());
        }
        for (path, resolution) in &self.templates.files {
            by_file.entry(path).or_default().extend(resolution.diagnostics().cloned());
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
        all.extend(self.overlays.diagnostics(self.overlays_found()));
        all
    }

    /// What resolution found in each overlay file (a whole load resolves nothing without the directory).
    fn overlays_found(&self) -> &[Vec<Diagnostic>] {
        if self.dir_error.is_some() { &[] } else { &self.templates.overlays_found }
    }

    /// Whether anything stops the desired state from being applied.
    pub fn has_errors(&self) -> bool {
        self.dir_error.is_some()
            || self.declared.values().any(|places| places.values().map(Vec::len).sum::<usize>() > 1)
            || self.files.values().any(|f| f.diagnostics.iter().any(Diagnostic::is_error))
            || self.templates.definitions.values().flatten().any(Diagnostic::is_error)
            || self.templates.files.values().any(|r| r.diagnostics().any(Diagnostic::is_error))
            || self.overlays.diagnostics(self.overlays_found()).iter().any(Diagnostic::is_error)
    }
}

/// Plain groups of some files, by id, with their file.
type Plain<'a> = HashMap<&'a GroupId, (&'a PathBuf, &'a DesiredGroup)>;

/// What changed since the last resolution.
struct Change<'c> {
    /// The group files that define or use templates, or that declare a group an
    /// overlay patches, before or now.
    files: &'c BTreeSet<PathBuf>,
    /// The overlays, as they are now.
    overlays: &'c Overlays,
    /// Whether they may have changed.
    overlays_changed: bool,
}

/// Where resolution says which groups it resolved again.
struct Said<'s> {
    /// Those whose resolved state may have changed.
    affected: &'s mut BTreeSet<GroupId>,
    /// Those whose keys' places only may have changed.
    restated: &'s mut BTreeSet<GroupId>,
    /// Those resolved again because a template or an overlay changed: compared with
    /// what they were, and said to have changed if they did.
    compared: &'s mut BTreeSet<GroupId>,
}

impl TemplateIndex {
    /// Takes note of what a changed file defines and uses, before (`old`) and now.
    fn note(&mut self, path: &Path, old: Option<&FileGroups>, now: Option<&FileGroups>) {
        for (name, _) in old.into_iter().flat_map(|file| &file.uses) {
            if let Some(files) = self.users.get_mut(name) {
                files.remove(path);
                if files.is_empty() {
                    self.users.remove(name);
                }
            }
        }
        for (name, _) in now.into_iter().flat_map(|file| &file.uses) {
            self.users.entry(name.clone()).or_default().insert(path.to_path_buf());
        }
        match now.is_some_and(|file| !file.templates.is_empty()) {
            true => self.defining.insert(path.to_path_buf()),
            false => self.defining.remove(path),
        };
    }

    /// Resolves again what `change` can affect, saying which ids it resolved.
    ///
    /// A template is taken as changed when its first definition or its overlay
    /// patches changed (or only moved, when nothing but their places did); its users,
    /// and those of templates extending it, are resolved again. A changed file is
    /// resolved again whole; so is, when the overlays changed, every file declaring a
    /// group they patch (before or now). What the overlays' patches find (in the
    /// overlay files) is found again, from what each file's resolution noted.
    fn resolve(
        &mut self,
        files: &BTreeMap<PathBuf, FileGroups>,
        declared: &HashMap<GroupId, BTreeMap<PathBuf, Vec<crate::model::SourceLocation>>>,
        change: &Change<'_>,
        said: &mut Said<'_>,
    ) {
        let changed = change.files;
        let defining = self.defining.iter().filter_map(|path| files.get(path).map(|f| (path, f.templates.as_slice())));
        let templates::Definitions { by_name, usable, diagnostics } =
            templates::definitions(defining, self.users.keys().map(String::as_str));
        let defined = self.defining.iter().filter_map(|path| files.get(path)).flat_map(|f| &f.templates);
        let mut patching = Patching::new(change.overlays, &by_name, &usable, defined, |id| declared.contains_key(id));
        let patches_now: HashMap<String, Vec<Patch>> = patching
            .patches
            .of_templates()
            .map(|(name, patches)| (name.to_string(), patches.iter().map(|p| (*p).clone()).collect()))
            .collect();
        // The names whose first definition (or patches) changed, and those whose chain passes
        // through one now. A chain before the change needs no walk: it can differ from the chain
        // now only past a template whose definition changed, which the walk now meets first.
        // A definition that only moved (a line added above it) changes no group's
        // attributes, only the places their provenance and diagnostics name.
        let (mut redefined, mut moved): (HashSet<String>, HashSet<String>) = Default::default();
        let names = self.first.keys().chain(self.template_patches.keys()).map(String::as_str);
        for name in names.chain(by_name.keys().copied()).chain(patches_now.keys().map(String::as_str)) {
            let (before, now) = (self.first.get(name), by_name.get(name));
            let (patched_before, patched_now) = (self.template_patches.get(name), patches_now.get(name));
            let same_definition = match (before, now) {
                (Some(before), Some(now)) if before == *now => Some(true),
                (Some(before), Some(now)) if same_but_places(before, now) => Some(false),
                (None, None) => Some(true),
                _ => None,
            };
            let same_patches = match (patched_before, patched_now) {
                (before, now) if before == now => Some(true),
                (Some(before), Some(now)) if same_patches_but_places(before, now) => Some(false),
                _ => None,
            };
            match (same_definition, same_patches) {
                (Some(true), Some(true)) => continue,
                (Some(_), Some(_)) => &mut moved,
                _ => &mut redefined,
            }
            .insert(name.to_string());
        }
        moved.retain(|name| !redefined.contains(name));
        let touched = reaching(&by_name, &redefined);
        let relocated: HashSet<&str> =
            reaching(&by_name, &moved).into_iter().filter(|n| !touched.contains(n)).collect();
        // Defined or no longer: `template:` naming them is known or unknown now.
        let appeared: Vec<&String> =
            redefined.iter().filter(|n| self.first.contains_key(*n) != by_name.contains_key(n.as_str())).collect();

        // The files declaring a group the overlays patch, before or now, when they changed.
        let patched_now: HashSet<GroupId> = patching.patches.patched_ids().cloned().collect();
        let mut repatched: BTreeSet<&PathBuf> = BTreeSet::new();
        if change.overlays_changed {
            for id in self.patched.iter().chain(&patched_now) {
                let places = declared.get(id).into_iter().flat_map(BTreeMap::keys);
                repatched.extend(places.filter(|path| !changed.contains(*path) && files.contains_key(*path)));
            }
        }

        self.definitions.clear();
        for (path, diagnostic) in diagnostics {
            self.definitions.entry(path.clone()).or_default().push(diagnostic);
        }
        // The files whose unknown names to check again.
        let mut recheck: BTreeSet<&PathBuf> = changed.iter().collect();
        for name in &appeared {
            recheck.extend(self.users.get(name.as_str()).into_iter().flatten());
        }
        for path in recheck {
            match files.get(path).filter(|file| file.has_templates()) {
                Some(file) => {
                    self.files.entry(path.clone()).or_default().unknown = templates::unknown_uses(&by_name, &file.uses);
                }
                None => {
                    if let Some(resolution) = self.files.get_mut(path) {
                        resolution.unknown.clear();
                    }
                }
            }
        }
        let resolver = FileResolver::new(&by_name, &usable, &patching.patches);
        // Changed files: resolved whole. Files whose patched groups may have changed: too,
        // the groups they resolved before or now to compare.
        for path in changed {
            let Some(file) = files.get(path) else {
                self.files.remove(path);
                continue;
            };
            self.files.entry(path.clone()).or_default().resolve_all(file, &resolver, said.affected);
        }
        for path in repatched {
            let resolution = self.files.entry(path.clone()).or_default();
            said.compared.extend(resolution.groups.keys().chain(&resolution.patched).cloned());
            resolution.resolve_all(&files[path], &resolver, said.compared);
        }
        // The groups of other files that use a touched template; and those using a
        // relocated one, whose attributes stay but whose provenance names its place.
        let mut users: BTreeSet<&PathBuf> = BTreeSet::new();
        for name in touched.iter().chain(&relocated) {
            users.extend(self.users.get(*name).into_iter().flatten().filter(|path| !changed.contains(*path)));
        }
        for path in users {
            let (Some(file), Some(resolution)) = (files.get(path), self.files.get_mut(path)) else { continue };
            // Every templated group of a file is resolved when the file is read, so this
            // holds; were it not to, the whole file is resolved again.
            if resolution.found.len() != file.templated.len() {
                said.compared.extend(resolution.groups.keys().chain(&resolution.patched).cloned());
                resolution.resolve_all(file, &resolver, said.compared);
                continue;
            }
            for (position, entry) in file.templated.iter().enumerate() {
                let template = entry.template.as_str();
                if !touched.contains(template) && !relocated.contains(template) {
                    continue;
                }
                for (id, _) in &entry.ids {
                    resolution.groups.remove(id);
                }
                let mut effect = UnsetEffect::new();
                let (resolved, found) = resolver.resolve(entry, &mut effect);
                resolution.groups.extend(resolved);
                (resolution.found[position], resolution.effects[position]) = (found, effect);
                let ids = entry.ids.iter().map(|(id, _)| id.clone());
                match touched.contains(template) {
                    true => said.compared.extend(ids),
                    false => said.restated.extend(ids),
                };
            }
        }
        self.files.retain(|_, resolution| resolution.holds_anything());
        // What the overlays' group patches' `unset:` removed, over every file.
        let effects = self.files.values().flat_map(|r| r.effects.iter().chain([&r.patched_effect]));
        patching.tell_unset_effect(effects);
        self.overlays_found = patching.found;
        // Keep the definitions and patches for the next change to compare with.
        self.first.retain(|name, _| by_name.contains_key(name.as_str()));
        for name in redefined.into_iter().chain(moved) {
            if let Some(template) = by_name.get(name.as_str()) {
                self.first.insert(name, (*template).clone());
            }
        }
        self.template_patches = patches_now;
        self.patched = patched_now;
    }
}

/// Whether two lists of patches differ at most in where they and their parts are written.
fn same_patches_but_places(a: &[Patch], b: &[Patch]) -> bool {
    let unset = |p: &Patch| p.unset.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>();
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| a.attributes == b.attributes && a.valid == b.valid && unset(a) == unset(b))
}

/// Whether a group is the same in all that is planned for it (all but the provenance of its keys).
fn same_plan(a: Option<&DesiredGroup>, b: Option<&DesiredGroup>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.attributes == b.attributes
                && a.source == b.source
                && a.ownership == b.ownership
                && a.ownership_written == b.ownership_written
        }
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Whether two definitions of a template differ at most in where they and their parts are written.
fn same_but_places(a: &Template, b: &Template) -> bool {
    let parent = |t: &Template| t.extends.as_ref().map(|(name, _)| name.clone());
    a.name == b.name
        && parent(a) == parent(b)
        && a.ownership == b.ownership
        && a.attributes == b.attributes
        && a.valid == b.valid
}

/// The names (defined, or among `names`) whose chain passes through one of `names`.
/// Each name is walked once: a walk stops at a name an earlier walk answered for, so
/// that long chains cost their length, not its square.
fn reaching<'a>(by_name: &ByName<'a>, names: &'a HashSet<String>) -> HashSet<&'a str> {
    if names.is_empty() {
        return HashSet::new();
    }
    let parent = |n: &str| by_name.get(n).and_then(|t| t.extends.as_ref()).map(|(parent, _)| parent.as_str());
    let mut reaches: HashMap<&'a str, bool> = HashMap::with_capacity(by_name.len());
    let mut path: Vec<&'a str> = Vec::new();
    for start in by_name.keys().copied().chain(names.iter().map(String::as_str)) {
        path.clear();
        let mut current = start;
        let answer = loop {
            if let Some(known) = reaches.get(current) {
                break *known;
            }
            if names.contains(current) {
                break true;
            }
            // Taken as not reaching while walked: meeting it again is a cycle without one of `names`.
            reaches.insert(current, false);
            path.push(current);
            match parent(current).and_then(|p| by_name.get_key_value(p).map(|(name, _)| *name)) {
                Some(next) => current = next,
                None => break parent(current).is_some_and(|p| names.contains(p)),
            }
        };
        for name in &path {
            reaches.insert(name, answer);
        }
        if path.is_empty() {
            reaches.insert(current, answer);
        }
    }
    reaches.into_iter().filter_map(|(name, reaches)| reaches.then_some(name)).collect()
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
    fn a_template_change_re_resolves_only_the_groups_it_can_affect() {
        let dir = tempfile::tempdir().unwrap();
        let ids = |affected: &BTreeSet<GroupId>| affected.iter().map(GroupId::as_str).collect::<Vec<_>>().join(" ");
        let templates = |base: &str, other: &str| {
            format!("templates:\n  base:\n    k: {base}\n  child:\n    extends: base\n  other:\n    k: {other}\n")
        };
        let t = write(dir.path(), "t.yaml", &templates("1", "1"));
        write(
            dir.path(),
            "g.yaml",
            "groups:\n  - id: a\n    template: base\n  - ids: [b1, b2]\n    template: child\n  - id: c\n    template: other\n  - id: plain\n    attributes: {}\n",
        );
        write(dir.path(), "h.yaml", "groups:\n  - id: d\n    template: other\n");
        let mut index = DesiredIndex::load(dir.path());
        assert!(!index.has_errors(), "{:?}", index.diagnostics());

        // A template used through `extends` too; another, used in two files.
        std::fs::write(&t, templates("2", "1")).unwrap();
        assert_eq!(ids(&index.update([t.clone()])), "a b1 b2");
        std::fs::write(&t, templates("2", "2")).unwrap();
        assert_eq!(ids(&index.update([t.clone()])), "c d");
        // Only the place of a template changes (a line above it): no group changes.
        std::fs::write(&t, format!("# moved\n{}", templates("2", "2"))).unwrap();
        assert_eq!(ids(&index.update([t.clone()])), "");
        // A change that leaves every definition as it was: only the file's own groups.
        std::fs::write(&t, format!("# moved\n{}\n# a comment\n", templates("2", "2"))).unwrap();
        assert_eq!(ids(&index.update([t.clone()])), "");
        let fresh = super::super::load(dir.path());
        assert_eq!(&fresh.state.groups, index.groups());
        assert_eq!(&index.groups()[&GroupId::parse("b2").unwrap()].attributes["k"], "2");
    }

    #[test]
    fn an_overlay_change_says_only_the_groups_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let ids = |affected: &BTreeSet<GroupId>| affected.iter().map(GroupId::as_str).collect::<Vec<_>>().join(" ");
        let groups = dir.path().join("groups");
        write(
            &groups,
            "g.yaml",
            "templates:\n  room:\n    k: base\n  lobby:\n    k: lobby\ngroups:\n  - ids: [r1, r2, r3]\n    template: room\n  - id: l\n    template: lobby\n  - id: plain\n    attributes: {k: own}\n",
        );
        let overlay = write(dir.path(), "overlays/env.yaml", "templates:\n  room:\n    k: patched\n");
        let at =
            crate::model::SourceLocation { file: std::sync::Arc::from(Path::new("grattr.yaml")), line: 1, column: 1 };
        let mut index = DesiredIndex::load_with(&groups, &[OverlayPath { path: overlay.clone(), at }]);
        assert!(!index.has_errors(), "{:?}", index.diagnostics());
        let value =
            |index: &DesiredIndex, id: &str| index.groups()[&GroupId::parse(id).unwrap()].attributes["k"].to_string();
        assert_eq!(value(&index, "r2"), "patched");

        // A group patch: that group alone.
        std::fs::write(
            &overlay,
            "templates:\n  room:\n    k: patched\ngroups:\n  - id: plain\n    attributes: {k: two}\n",
        )
        .unwrap();
        assert_eq!(ids(&index.update([overlay.clone()])), "plain");
        // The template patch's value: the template's groups, not the others.
        std::fs::write(
            &overlay,
            "templates:\n  room:\n    k: again\ngroups:\n  - id: plain\n    attributes: {k: two}\n",
        )
        .unwrap();
        assert_eq!(ids(&index.update([overlay.clone()])), "r1 r2 r3");
        // A comment, or a patch that moves: nothing.
        std::fs::write(
            &overlay,
            "# env\ngroups:\n  - id: plain\n    attributes: {k: two}\ntemplates:\n  room:\n    k: again\n",
        )
        .unwrap();
        assert_eq!(ids(&index.update([overlay.clone()])), "");
        // Patches gone: what they changed, back as declared.
        std::fs::write(&overlay, "").unwrap();
        assert_eq!(ids(&index.update([overlay.clone()])), "plain r1 r2 r3");
        assert_eq!((value(&index, "r1"), value(&index, "plain")), ("base".to_string(), "own".to_string()));
        let fresh = super::super::load(&groups);
        assert_eq!(&fresh.state.groups, index.groups());
    }

    #[test]
    fn a_template_that_moves_keeps_its_groups_diagnostics_naming_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let keys: String = (0..16).map(|k| format!("    k{k}: v")).collect::<Vec<_>>().join("\n") + "\n";
        let t = write(dir.path(), "t.yaml", &format!("templates:\n  big:\n{keys}"));
        write(dir.path(), "g.yaml", "groups:\n  - id: a\n    template: big\n    attributes: {extra: v}\n");
        let mut index = DesiredIndex::load(dir.path());
        let limit = |index: &DesiredIndex| index.diagnostics().iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(
            limit(&index)[0].contains("16 from template big (") && limit(&index)[0].contains("t.yaml:2:3)"),
            "{:?}",
            limit(&index)
        );

        std::fs::write(&t, format!("# a line above\ntemplates:\n  big:\n{keys}")).unwrap();
        assert!(index.update([t]).is_empty());
        assert!(limit(&index)[0].contains("t.yaml:3:3)"), "{:?}", limit(&index));
        assert_eq!(super::super::load(dir.path()).diagnostics, index.diagnostics());
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

/// `watch`'s index against a whole load, over random sequences of edits to files
/// that define and use templates.
#[cfg(test)]
mod differential {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write as _;

    const FILES: [&str; 4] = ["a.yaml", "b.yaml", "sub/c.yaml", "d.yml"];
    /// Template names: the last one is never defined by `AddTemplate`, only named.
    const NAMES: usize = 5;
    const KEYS: usize = 20;

    #[derive(Debug, Clone)]
    struct Tpl {
        name: usize,
        extends: Option<usize>,
        keys_ownership: bool,
        attributes: BTreeMap<usize, usize>,
    }

    #[derive(Debug, Clone)]
    struct Entry {
        ids: Vec<usize>,
        set: bool,
        template: Option<usize>,
        attributes: BTreeMap<usize, usize>,
        unset: BTreeSet<usize>,
    }

    #[derive(Debug, Clone, Default)]
    struct File {
        exists: bool,
        garbage: bool,
        templates: Vec<Tpl>,
        groups: Vec<Entry>,
    }

    #[derive(Debug, Clone)]
    enum Op {
        TemplateValue {
            file: usize,
            t: usize,
            key: usize,
            value: Option<usize>,
        },
        Extends {
            file: usize,
            t: usize,
            parent: Option<usize>,
        },
        Ownership {
            file: usize,
            t: usize,
        },
        AddTemplate {
            file: usize,
            name: usize,
        },
        RemoveTemplate {
            file: usize,
            t: usize,
        },
        MoveTemplate {
            from: usize,
            to: usize,
            t: usize,
        },
        BigTemplate {
            file: usize,
            t: usize,
        },
        DeleteFile {
            file: usize,
        },
        Garbage {
            file: usize,
        },
        AddEntry {
            file: usize,
            ids: Vec<usize>,
            set: bool,
            template: Option<usize>,
        },
        RemoveEntry {
            file: usize,
            e: usize,
        },
        EntryTemplate {
            file: usize,
            e: usize,
            template: Option<usize>,
        },
        EntryIds {
            file: usize,
            e: usize,
            ids: Vec<usize>,
            set: bool,
        },
        EntryValue {
            file: usize,
            e: usize,
            key: usize,
            value: Option<usize>,
        },
        EntryUnset {
            file: usize,
            e: usize,
            key: usize,
        },
        /// In the overlay: a template's patch sets (or, with no value, unsets) a key.
        OverlayTemplate {
            name: usize,
            key: usize,
            value: Option<usize>,
        },
        /// In the overlay: a new patch of groups that sets (or unsets) a key.
        OverlayGroups {
            ids: Vec<usize>,
            key: usize,
            value: Option<usize>,
        },
        /// In the overlay: a patch removed (the last one leaves the overlay patching nothing).
        OverlayDrop {
            patch: usize,
        },
    }

    /// One patch: the keys it sets, and those it unsets.
    type Keys = (BTreeMap<usize, usize>, BTreeSet<usize>);

    /// The one overlay file of the environment.
    #[derive(Debug, Clone, Default)]
    struct Overlay {
        templates: Vec<(usize, BTreeMap<usize, usize>, BTreeSet<usize>)>,
        groups: Vec<(Vec<usize>, Keys)>,
    }

    /// The overlay's place among the files an op touches.
    const OVERLAY: usize = FILES.len();

    fn op() -> impl Strategy<Value = Op> {
        let file = 0..FILES.len();
        let name = 0..NAMES;
        let key = 0..KEYS;
        let value = prop::option::weighted(0.8, 0..3usize);
        let ids = prop::collection::vec(0..40usize, 1..4);
        prop_oneof![
            4 => (file.clone(), any::<usize>(), key.clone(), value.clone())
                .prop_map(|(file, t, key, value)| Op::TemplateValue { file, t, key, value }),
            2 => (file.clone(), any::<usize>(), prop::option::of(name.clone()))
                .prop_map(|(file, t, parent)| Op::Extends { file, t, parent }),
            1 => (file.clone(), any::<usize>()).prop_map(|(file, t)| Op::Ownership { file, t }),
            2 => (file.clone(), 0..NAMES - 1).prop_map(|(file, name)| Op::AddTemplate { file, name }),
            1 => (file.clone(), any::<usize>()).prop_map(|(file, t)| Op::RemoveTemplate { file, t }),
            2 => (file.clone(), file.clone(), any::<usize>()).prop_map(|(from, to, t)| Op::MoveTemplate { from, to, t }),
            2 => (file.clone(), any::<usize>()).prop_map(|(file, t)| Op::BigTemplate { file, t }),
            1 => file.clone().prop_map(|file| Op::DeleteFile { file }),
            1 => file.clone().prop_map(|file| Op::Garbage { file }),
            2 => (file.clone(), ids.clone(), any::<bool>(), prop::option::weighted(0.8, name.clone()))
                .prop_map(|(file, ids, set, template)| Op::AddEntry { file, ids, set, template }),
            1 => (file.clone(), any::<usize>()).prop_map(|(file, e)| Op::RemoveEntry { file, e }),
            2 => (file.clone(), any::<usize>(), prop::option::weighted(0.8, name.clone()))
                .prop_map(|(file, e, template)| Op::EntryTemplate { file, e, template }),
            1 => (file.clone(), any::<usize>(), ids, any::<bool>())
                .prop_map(|(file, e, ids, set)| Op::EntryIds { file, e, ids, set }),
            2 => (file.clone(), any::<usize>(), key.clone(), value)
                .prop_map(|(file, e, key, value)| Op::EntryValue { file, e, key, value }),
            1 => (file, any::<usize>(), key.clone()).prop_map(|(file, e, key)| Op::EntryUnset { file, e, key }),
            1 => (name.clone(), key.clone(), prop::option::weighted(0.7, 0..3usize))
                .prop_map(|(name, key, value)| Op::OverlayTemplate { name, key, value }),
            1 => (prop::collection::vec(0..14usize, 1..3), key, prop::option::weighted(0.7, 0..3usize))
                .prop_map(|(ids, key, value)| Op::OverlayGroups { ids, key, value }),
            1 => any::<usize>().prop_map(|patch| Op::OverlayDrop { patch }),
        ]
    }

    /// The overlays of the environment: the one overlay file.
    fn overlays(root: &Path) -> Vec<OverlayPath> {
        let at =
            crate::model::SourceLocation { file: std::sync::Arc::from(Path::new("grattr.yaml")), line: 1, column: 1 };
        vec![OverlayPath { path: overlay_path(root), at }]
    }

    /// Where every sequence starts: templates in two files (one extending another in
    /// a third), used by groups and sets in every file.
    fn base() -> Vec<File> {
        let tpl = |name, extends, attributes: &[(usize, usize)]| Tpl {
            name,
            extends,
            keys_ownership: false,
            attributes: attributes.iter().copied().collect(),
        };
        let entry = |ids: &[usize], template| Entry {
            ids: ids.to_vec(),
            set: ids.len() > 1,
            template,
            attributes: BTreeMap::from([(ids[0] % KEYS, 1)]),
            unset: BTreeSet::new(),
        };
        let file = |templates, groups| File { exists: true, garbage: false, templates, groups };
        vec![
            file(
                vec![tpl(0, None, &[(0, 0), (1, 0), (2, 0)]), tpl(1, Some(0), &[(1, 1), (3, 1)])],
                vec![entry(&[0], Some(0)), entry(&[1, 2], Some(1))],
            ),
            file(vec![tpl(2, None, &[(4, 2)])], vec![entry(&[3], Some(2)), entry(&[4], None)]),
            file(vec![tpl(3, Some(1), &[(5, 0)])], vec![entry(&[5, 6, 7], Some(3)), entry(&[8], Some(1))]),
            file(Vec::new(), vec![entry(&[9], Some(0)), entry(&[10, 11], Some(2)), entry(&[12], Some(3))]),
        ]
    }

    /// Makes `file` an existing, readable file (as an edit to it does).
    fn live(files: &mut [File], file: usize) -> &mut File {
        let f = &mut files[file];
        if !f.exists || f.garbage {
            *f = File { exists: true, ..File::default() };
        }
        f
    }

    /// Applies `op`; returns the files it touched ([`OVERLAY`] for the overlay).
    fn apply(files: &mut [File], overlay: &mut Overlay, op: &Op) -> Vec<usize> {
        let pick = |len: usize, i: usize| (len > 0).then(|| i % len);
        let set = |attributes: &mut BTreeMap<usize, usize>, unset: &mut BTreeSet<usize>, key, value| match value {
            Some(value) => {
                attributes.insert(key, value);
                unset.remove(&key);
            }
            None => {
                attributes.remove(&key);
                unset.insert(key);
            }
        };
        match op.clone() {
            Op::OverlayTemplate { name, key, value } => {
                let at = match overlay.templates.iter().position(|(n, _, _)| *n == name) {
                    Some(at) => at,
                    None => {
                        overlay.templates.push((name, BTreeMap::new(), BTreeSet::new()));
                        overlay.templates.len() - 1
                    }
                };
                let (_, attributes, unset) = &mut overlay.templates[at];
                set(attributes, unset, key, value);
                vec![OVERLAY]
            }
            Op::OverlayGroups { ids, key, value } => {
                let (mut attributes, mut unset) = (BTreeMap::new(), BTreeSet::new());
                set(&mut attributes, &mut unset, key, value);
                overlay.groups.push((ids, (attributes, unset)));
                vec![OVERLAY]
            }
            Op::OverlayDrop { patch } => {
                let count = overlay.templates.len() + overlay.groups.len();
                if let Some(patch) = pick(count, patch) {
                    match patch < overlay.templates.len() {
                        true => {
                            overlay.templates.remove(patch);
                        }
                        false => {
                            overlay.groups.remove(patch - overlay.templates.len());
                        }
                    }
                }
                vec![OVERLAY]
            }
            Op::TemplateValue { file, t, key, value } => {
                let f = live(files, file);
                if let Some(t) = pick(f.templates.len(), t) {
                    match value {
                        Some(v) => f.templates[t].attributes.insert(key, v),
                        None => f.templates[t].attributes.remove(&key),
                    };
                }
                vec![file]
            }
            Op::Extends { file, t, parent } => {
                let f = live(files, file);
                if let Some(t) = pick(f.templates.len(), t) {
                    f.templates[t].extends = parent;
                }
                vec![file]
            }
            Op::Ownership { file, t } => {
                let f = live(files, file);
                if let Some(t) = pick(f.templates.len(), t) {
                    f.templates[t].keys_ownership ^= true;
                }
                vec![file]
            }
            Op::AddTemplate { file, name } => {
                let template =
                    Tpl { name, extends: None, keys_ownership: false, attributes: BTreeMap::from([(name, 0)]) };
                live(files, file).templates.push(template);
                vec![file]
            }
            Op::RemoveTemplate { file, t } => {
                let f = live(files, file);
                if let Some(t) = pick(f.templates.len(), t) {
                    f.templates.remove(t);
                }
                vec![file]
            }
            Op::MoveTemplate { from, to, t } => {
                let f = live(files, from);
                let Some(t) = pick(f.templates.len(), t) else { return vec![from] };
                let template = f.templates.remove(t);
                live(files, to).templates.push(template);
                vec![from, to]
            }
            Op::BigTemplate { file, t } => {
                let f = live(files, file);
                if let Some(t) = pick(f.templates.len(), t) {
                    f.templates[t].attributes = (0..16).map(|k| (k, 1)).collect();
                }
                vec![file]
            }
            Op::DeleteFile { file } => {
                files[file] = File::default();
                vec![file]
            }
            Op::Garbage { file } => {
                files[file] = File { exists: true, garbage: true, ..File::default() };
                vec![file]
            }
            Op::AddEntry { file, ids, set, template } => {
                let entry = Entry { ids, set, template, attributes: BTreeMap::new(), unset: BTreeSet::new() };
                live(files, file).groups.push(entry);
                vec![file]
            }
            Op::RemoveEntry { file, e } => {
                let f = live(files, file);
                if let Some(e) = pick(f.groups.len(), e) {
                    f.groups.remove(e);
                }
                vec![file]
            }
            Op::EntryTemplate { file, e, template } => {
                let f = live(files, file);
                if let Some(e) = pick(f.groups.len(), e) {
                    f.groups[e].template = template;
                }
                vec![file]
            }
            Op::EntryIds { file, e, ids, set } => {
                let f = live(files, file);
                if let Some(e) = pick(f.groups.len(), e) {
                    (f.groups[e].ids, f.groups[e].set) = (ids, set);
                }
                vec![file]
            }
            Op::EntryValue { file, e, key, value } => {
                let f = live(files, file);
                if let Some(e) = pick(f.groups.len(), e) {
                    match value {
                        Some(v) => f.groups[e].attributes.insert(key, v),
                        None => f.groups[e].attributes.remove(&key),
                    };
                }
                vec![file]
            }
            Op::EntryUnset { file, e, key } => {
                let f = live(files, file);
                if let Some(e) = pick(f.groups.len(), e) {
                    let unset = &mut f.groups[e].unset;
                    if !unset.remove(&key) {
                        unset.insert(key);
                    }
                }
                vec![file]
            }
        }
    }

    fn attributes(out: &mut String, attributes: &BTreeMap<usize, usize>, indent: &str) {
        for (k, v) in attributes {
            let _ = writeln!(out, "{indent}k{k}: \"v{v}\"");
        }
    }

    fn render(file: &File) -> String {
        if file.garbage {
            return "groups: [unclosed\n".to_string();
        }
        let mut out = String::new();
        if !file.templates.is_empty() {
            out.push_str("templates:\n");
            for t in &file.templates {
                let mut body = String::new();
                if let Some(parent) = t.extends {
                    let _ = writeln!(body, "    extends: t{parent}");
                }
                if t.keys_ownership {
                    body.push_str("    ownership: keys\n");
                }
                attributes(&mut body, &t.attributes, "    ");
                match body.is_empty() {
                    true => {
                        let _ = writeln!(out, "  t{}: {{}}", t.name);
                    }
                    false => {
                        let _ = write!(out, "  t{}:\n{body}", t.name);
                    }
                }
            }
        }
        if !file.groups.is_empty() || file.templates.is_empty() {
            out.push_str("groups:\n");
        }
        for entry in &file.groups {
            let ids: Vec<String> = entry.ids.iter().map(|i| format!("g{i}")).collect();
            match entry.set {
                true => {
                    let _ = writeln!(out, "  - ids: [{}]", ids.join(", "));
                }
                false => {
                    let _ = writeln!(out, "  - id: {}", ids[0]);
                }
            }
            if let Some(t) = entry.template {
                let _ = writeln!(out, "    template: t{t}");
            }
            if !entry.attributes.is_empty() {
                out.push_str("    attributes:\n");
                attributes(&mut out, &entry.attributes, "      ");
            } else if entry.template.is_none() {
                out.push_str("    attributes: {}\n");
            }
            if !entry.unset.is_empty() {
                let keys: Vec<String> = entry.unset.iter().map(|k| format!("k{k}")).collect();
                let _ = writeln!(out, "    unset: [{}]", keys.join(", "));
            }
        }
        out
    }

    fn render_overlay(overlay: &Overlay) -> String {
        let patch = |out: &mut String, attributes: &BTreeMap<usize, usize>, unset: &BTreeSet<usize>, indent: &str| {
            if !attributes.is_empty() {
                let _ = writeln!(out, "{indent}attributes:");
                self::attributes(out, attributes, &format!("{indent}  "));
            }
            if !unset.is_empty() {
                let keys: Vec<String> = unset.iter().map(|k| format!("k{k}")).collect();
                let _ = writeln!(out, "{indent}unset: [{}]", keys.join(", "));
            }
        };
        let mut out = String::new();
        if !overlay.templates.is_empty() {
            out.push_str("templates:\n");
            for (name, attributes, unset) in &overlay.templates {
                let _ = writeln!(out, "  t{name}:");
                // A template's patch is its keys, and `unset:`.
                self::attributes(&mut out, attributes, "    ");
                if !unset.is_empty() {
                    let keys: Vec<String> = unset.iter().map(|k| format!("k{k}")).collect();
                    let _ = writeln!(out, "    unset: [{}]", keys.join(", "));
                }
            }
        }
        out.push_str("groups:\n");
        for (ids, (attributes, unset)) in &overlay.groups {
            let ids: Vec<String> = ids.iter().map(|i| format!("g{i}")).collect();
            let _ = writeln!(out, "  - ids: [{}]", ids.join(", "));
            patch(&mut out, attributes, unset, "    ");
        }
        if overlay.groups.is_empty() {
            out = out.replace("groups:\n", "groups: []\n");
        }
        out
    }

    /// Where the overlay is: beside the groups directory.
    fn overlay_path(root: &Path) -> PathBuf {
        root.join("env.yaml")
    }

    fn write(root: &Path, files: &[File], overlay: &Overlay, which: usize) -> PathBuf {
        if which == OVERLAY {
            std::fs::write(overlay_path(root), render_overlay(overlay)).unwrap();
            return overlay_path(root);
        }
        // Component by component, as a directory walk names it on every OS.
        let path = FILES[which].split('/').fold(root.join("groups"), |path, part| path.join(part));
        match files[which].exists {
            true => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, render(&files[which])).unwrap();
            }
            false => {
                let _ = std::fs::remove_file(&path);
            }
        }
        path
    }

    /// The index equals a whole load: the same diagnostics, and the same groups
    /// (but those declared twice, which a load takes the first of and the index none of).
    fn same_as_a_load(index: &DesiredIndex, root: &Path) -> Result<(), TestCaseError> {
        let fresh = super::super::groups::load_with(&root.join("groups"), &overlays(root));
        prop_assert_eq!(&fresh.diagnostics, &index.diagnostics());
        let twice = |id: &GroupId| index.declared.get(id).is_some_and(|p| p.values().map(Vec::len).sum::<usize>() > 1);
        let loaded: BTreeMap<&GroupId, &DesiredGroup> =
            fresh.state.groups.iter().filter(|(id, _)| !twice(id)).collect();
        let indexed: BTreeMap<&GroupId, &DesiredGroup> = index.groups().iter().collect();
        prop_assert_eq!(loaded, indexed);
        prop_assert_eq!(fresh.has_errors(), index.has_errors());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// After any sequence of edits, the index equals a whole load (provenance
        /// included), and the ids an update returns include every group whose plan
        /// it can change.
        #[test]
        fn edits_file_by_file_equal_a_whole_load(
            start in prop::collection::vec(op(), 0..6),
            steps in prop::collection::vec(prop::collection::vec(op(), 1..3), 1..25),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut files, mut overlay) = (base(), Overlay::default());
            for op in &start {
                apply(&mut files, &mut overlay, op);
            }
            std::fs::create_dir_all(dir.path().join("groups")).unwrap();
            for which in 0..=OVERLAY {
                write(dir.path(), &files, &overlay, which);
            }
            let mut index = DesiredIndex::load_with(&dir.path().join("groups"), &overlays(dir.path()));
            same_as_a_load(&index, dir.path())?;
            for step in &steps {
                let touched: BTreeSet<usize> = step.iter().flat_map(|op| apply(&mut files, &mut overlay, op)).collect();
                let paths: Vec<PathBuf> =
                    touched.iter().map(|which| write(dir.path(), &files, &overlay, *which)).collect();
                let before = index.groups().clone();
                let affected = index.update(paths);
                same_as_a_load(&index, dir.path())?;
                // What is planned for a group is all of it but the provenance of its keys.
                let planned = |g: &DesiredGroup| DesiredGroup { origins: crate::model::Origins::Unknown, ..g.clone() };
                let mut changed = BTreeSet::new();
                for id in before.keys().chain(index.groups().keys()) {
                    if before.get(id).map(planned) != index.groups().get(id).map(planned) {
                        prop_assert!(affected.contains(id), "{id} changed but is not said to: {step:?}");
                        changed.insert(id.clone());
                    }
                }
                // An edit of the overlay alone says no more than what changed.
                if touched == BTreeSet::from([OVERLAY]) {
                    prop_assert_eq!(&affected, &changed, "{:?}", step);
                }
            }
        }
    }
}
