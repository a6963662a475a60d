//! Adopting groups that exist (`grattr import`): the YAML that declares exactly
//! what is live, checked by reading it back, and the groups recorded as applied.

use super::{Workspace, WriteLock};
use crate::desired::{emit, groups};
use crate::lockfile::{LockfileError, Record};
use crate::model::{AttributeSet, GroupId, Ownership, SourceLocation};
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

/// The group file that declares `imported` exactly, with `ownership`, for `path`,
/// with a header naming the app. It is read back first: unless it declares exactly
/// these groups, attributes and ownership, it is an error and nothing is to be written.
pub fn import_file(
    path: &Path,
    sdkappid: u64,
    imported: &[(GroupId, AttributeSet)],
    ownership: Ownership,
) -> Result<String, NotReproduced> {
    let header = format!(
        "Imported by `grattr import` from sdkappid {sdkappid}: the live attributes, exactly.\nEdit freely: this file is now the desired state of these groups."
    );
    let text = emit::group_file(&header, imported, ownership);
    let parsed = groups::parse_file(Arc::from(path), &text);
    let errors: Vec<String> = parsed.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    let same = parsed.groups.len() == imported.len()
        && parsed
            .groups
            .iter()
            .zip(imported)
            .all(|((id, g), (want_id, want))| id == want_id && &g.attributes == want && g.ownership == ownership);
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
    /// ownership: the keys adopted): the next plan has no change for them.
    pub fn adopt(
        &mut self,
        _lock: &WriteLock,
        imported: Vec<(GroupId, AttributeSet)>,
        ownership: Ownership,
    ) -> Result<(), LockfileError> {
        let mut lockfile = self.lockfile.clone();
        lockfile.sdkappid.get_or_insert(self.environment.sdkappid);
        lockfile.apply_records(imported.into_iter().map(|(group, attributes)| Record::Set {
            group,
            attributes,
            ownership,
        }));
        lockfile.write(&self.environment.lockfile)?;
        self.lockfile = lockfile;
        Ok(())
    }
}
