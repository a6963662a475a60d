//! Configured paths stay inside the repository: `groups:`, `lockfile:` and every
//! `overlays:` entry of `grattr.yaml` — a file a pull request can change — must
//! resolve, symlinks followed, under the directory holding `grattr.yaml`, as the
//! symlinks under `groups/` must. Otherwise a pull request could make a plan read
//! files of the machine it runs on (`overlays: [/etc/…]`), or make `apply` create
//! its lock and lockfile anywhere. The check runs when an environment is resolved,
//! before anything is read or created.
//!
//! What is legitimately elsewhere is chosen on the command line, which a pull
//! request does not write: `--state-dir` for the record, and
//! `--allow-outside-paths` for a checkout whose configuration is trusted.

use crate::desired::diagnostic::{Diagnostic, Rule};
use crate::model::SourceLocation;
use std::path::{Component, Path, PathBuf};

/// Where `path` leads once every symlink on the way is followed. The part that does
/// not exist yet (a lockfile not yet written) is taken as written, `..` included.
/// `Err` says why it cannot be told: a symlink that cannot be followed.
pub(super) fn resolve(path: &Path) -> Result<PathBuf, String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| format!("cannot tell the current directory: {e}"))?.join(path)
    };
    let mut resolved = PathBuf::new();
    // Whether `resolved` exists: below a missing directory nothing can be a symlink.
    let mut exists = true;
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                if !exists {
                    continue;
                }
                match std::fs::symlink_metadata(&resolved) {
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        resolved = resolved
                            .canonicalize()
                            .map_err(|e| format!("cannot follow the symlink {}: {e}", resolved.display()))?;
                    }
                    Ok(_) => {}
                    Err(_) => exists = false,
                }
            }
        }
    }
    Ok(resolved)
}

/// The diagnostic for a configured `path` (`setting` says which, as written at
/// `at`) when it leads outside `root` (resolved), or cannot be resolved.
pub(super) fn outside(root: &Path, setting: &str, path: &Path, at: SourceLocation) -> Option<Diagnostic> {
    let message = match resolve(path) {
        Ok(resolved) if resolved.starts_with(root) => return None,
        Ok(resolved) => {
            format!("{setting} leads outside the repository ({}): to {}", root.display(), resolved.display())
        }
        Err(why) => format!("{setting}: {why}"),
    };
    Some(Diagnostic::error(Rule::OutsideRepository, at, message).with_help(
        "grattr reads and writes only paths inside the repository (the directory of grattr.yaml): \
         move it inside; keep a server's record elsewhere with --state-dir; \
         pass --allow-outside-paths only for a configuration you trust",
    ))
}

// Unix symlinks: on Windows creating one needs a privilege a test cannot assume.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_followed_and_missing_parts_taken_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("repo")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("repo/out")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere/x"), root.join("repo/dangling")).unwrap();
        let tmp = Path::new("/tmp").canonicalize().unwrap();
        assert_eq!(resolve(&root.join("repo/out/a/../b.yaml")).unwrap(), tmp.join("b.yaml"));
        assert_eq!(resolve(&root.join("repo/new/../../x.lock")).unwrap(), root.join("x.lock"));
        assert_eq!(resolve(&root.join("repo/./groups")).unwrap(), root.join("repo/groups"));
        assert!(resolve(&root.join("repo/dangling")).unwrap_err().starts_with("cannot follow the symlink"));
        let at = SourceLocation { file: Path::new("grattr.yaml").into(), line: 3, column: 11 };
        let repo = root.join("repo");
        assert!(outside(&repo, "`groups: groups`", &repo.join("groups"), at.clone()).is_none());
        let refused = outside(&repo, "`lockfile: ../x.lock`", &repo.join("../x.lock"), at).unwrap();
        assert_eq!(refused.rule, Rule::OutsideRepository);
        assert_eq!(
            refused.message,
            format!(
                "`lockfile: ../x.lock` leads outside the repository ({}): to {}",
                repo.display(),
                root.join("x.lock").display()
            )
        );
    }
}
