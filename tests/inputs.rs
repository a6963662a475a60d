//! Inputs that grattr refuses instead of silently changing: journal records that do
//! not verify, damaged lockfiles, symlinks and special files under `groups/`, the
//! secret key file, and `import --from` lists. The number and tag cases of group
//! files are in the corpus (`tests/corpus/50-…` to `54-…`).

mod support;

use grattr::lockfile::{JournalWriter, Lockfile, Record, journal_path};
use grattr::model::{AttributeSet, Ownership};
use std::path::Path;
use support::Repo;
use support::emulator::{Server, attrs, grattr, id};

const APP: u64 = 1400000000;

/// A repository whose lockfile records `a` = {k: v}, with the group declared as {k: new}.
fn recorded_repo() -> Repo {
    let repo = Repo::new().file("groups/a.yaml", "groups:\n  - id: a\n    attributes: {k: new}\n");
    let mut lockfile = Lockfile::new(APP);
    lockfile.apply_records([Record::Set {
        group: id("a"),
        attributes: attrs(&[("k", "v")]),
        ownership: Ownership::Group,
    }]);
    lockfile.write(&repo.join("grattr.lock")).unwrap();
    repo
}

/// Writes a journal beside `lockfile` with one record, as grattr for `sdkappid` writes it.
fn journal(lockfile: &Path, sdkappid: u64, attributes: AttributeSet) {
    let writer = JournalWriter::open(lockfile, sdkappid).unwrap();
    writer.record(Record::Set { group: id("a"), attributes, ownership: Ownership::Group });
    writer.finish().unwrap();
}

/// Every command that reads the lockfile refuses the journal, once, and changes nothing.
fn refused_everywhere(repo: &Repo, error: &str) {
    let lockfile = repo.join("grattr.lock");
    let before = std::fs::read(&lockfile).unwrap();
    let journal_before = std::fs::read(journal_path(&lockfile)).unwrap();
    for args in [&["plan"][..], &["apply", "--yes"], &["drift"]] {
        let stderr = grattr(repo, args).code(1).into_stderr();
        assert_eq!(stderr.matches(error).count(), 1, "{args:?}: reported once\n{stderr}");
        assert_eq!(stderr.matches(": error: ").count(), 1, "{args:?}: one error\n{stderr}");
    }
    assert_eq!(std::fs::read(&lockfile).unwrap(), before, "the lockfile is unchanged");
    assert_eq!(std::fs::read(journal_path(&lockfile)).unwrap(), journal_before, "the journal is kept");
    assert!(Lockfile::read(&lockfile, APP).is_err());
}

#[test]
fn a_journal_record_whose_digest_does_not_match_is_refused_and_never_folded() {
    let repo = recorded_repo();
    let lockfile = repo.join("grattr.lock");
    journal(&lockfile, APP, attrs(&[("k", "applied")]));
    let path = journal_path(&lockfile);
    let forged = std::fs::read_to_string(&path).unwrap().replace("\"applied\"", "\"forged\"");
    std::fs::write(&path, forged).unwrap();
    refused_everywhere(
        &repo,
        ".grattr.lock.journal:1: error: journal record of group \"a\": digest does not match the record",
    );
}

#[test]
fn a_journal_record_of_another_app_is_refused_and_never_folded() {
    let repo = recorded_repo();
    journal(&repo.join("grattr.lock"), APP + 1, attrs(&[("k", "other app")]));
    refused_everywhere(
        &repo,
        ".grattr.lock.journal:1: error: journal record of group \"a\" is for sdkappid 1400000001, not 1400000000",
    );
}

#[test]
fn a_journal_of_an_older_grattr_is_refused_with_what_to_do() {
    let repo =
        recorded_repo().file(".grattr.lock.journal", "{\"op\":\"set\",\"group\":\"a\",\"attributes\":{\"k\":\"x\"}}\n");
    refused_everywhere(&repo, ".grattr.lock.journal:1: error: journal record has no digest");
    grattr(&repo, &["plan"])
        .code(1)
        .stderr_contains("re-run the grattr that wrote it")
        .stderr_contains("grattr plan --refresh");
}

#[test]
fn a_lockfile_with_an_unknown_top_level_field_is_refused() {
    let repo = recorded_repo();
    let text = repo.read("grattr.lock").replace("\"sdkappid\"", "\"prune\": true,\n  \"sdkappid\"");
    let repo = repo.file("grattr.lock", &text);
    grattr(&repo, &["plan"]).code(1).stderr_contains("grattr.lock:3:").stderr_contains("unknown field `prune`");
}

#[test]
fn a_lockfile_with_git_conflict_markers_is_refused_naming_the_line() {
    let repo = recorded_repo();
    let ours = repo.read("grattr.lock");
    let (head, groups) = ours.split_once("  \"groups\"").unwrap();
    let conflicted = format!("{head}<<<<<<< HEAD\n  \"groups\"{groups}=======\n  \"groups\": {{}}\n>>>>>>> feature\n");
    let line = head.lines().count() + 1;
    let repo = repo.file("grattr.lock", &conflicted);
    for args in [&["plan"][..], &["apply", "--yes"]] {
        grattr(&repo, args)
            .code(1)
            .stderr_contains(&format!("grattr.lock:{line}: error: the lockfile holds a git conflict marker `<<<<<<<`"))
            .stderr_contains("\"Lockfile merges and conflicts\" in grattr's README");
    }
    assert_eq!(repo.read("grattr.lock"), conflicted);
}

// Unix only: creating a symlink on Windows needs a privilege a test cannot assume.
#[cfg(unix)]
#[test]
fn a_symlink_leading_outside_the_repository_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), "groups:\n  - id: stolen\n    attributes: {k: v}\n").unwrap();
    std::fs::create_dir(outside.path().join("dir")).unwrap();
    std::fs::write(outside.path().join("dir/y.yaml"), "groups:\n  - id: also\n    attributes: {k: v}\n").unwrap();
    let repo = Repo::new()
        .file("groups/ok.yaml", "groups:\n  - id: ok\n    attributes: {k: v}\n")
        .file("shared/s.yaml", "groups:\n  - id: shared\n    attributes: {k: v}\n");
    std::os::unix::fs::symlink(outside.path().join("x.yaml"), repo.join("groups/out.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("dir"), repo.join("groups/outdir")).unwrap();
    std::os::unix::fs::symlink("/dev/null", repo.join("groups/null.yaml")).unwrap();
    std::os::unix::fs::symlink(repo.join("nowhere.yaml"), repo.join("groups/dangling.yaml")).unwrap();
    // Inside the repository, a symlink is followed.
    std::os::unix::fs::symlink("../shared/s.yaml", repo.join("groups/shared.yaml")).unwrap();
    // Exact but for the temporary directories the messages name.
    let stderr = grattr(&repo, &["validate"]).code(1).into_stderr();
    for path in ["groups/out.yaml", "groups/outdir", "groups/null.yaml"] {
        assert!(
            stderr.contains(&format!("{path}: error: the symlink leads outside the repository")),
            "{path}\n{stderr}"
        );
    }
    assert!(stderr.contains("groups/dangling.yaml: error: cannot follow the symlink"), "{stderr}");
    assert!(!stderr.contains("stolen") && !stderr.contains("also"), "{stderr}");
    assert!(stderr.contains("groups: invalid: 4 errors"), "{stderr}");
    std::fs::remove_file(repo.join("groups/out.yaml")).unwrap();
    std::fs::remove_file(repo.join("groups/outdir")).unwrap();
    std::fs::remove_file(repo.join("groups/null.yaml")).unwrap();
    std::fs::remove_file(repo.join("groups/dangling.yaml")).unwrap();
    grattr(&repo, &["validate"]).code(0).stdout_contains("groups: ok: 2 groups in 2 files");
}

// Unix only: Windows has no FIFOs in the file system.
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_and_never_opened() {
    let repo = Repo::new().file("groups/ok.yaml", "groups:\n  - id: ok\n    attributes: {k: v}\n");
    let fifo = |path: &Path| {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    };
    fifo(&repo.join("pipe"));
    fifo(&repo.join("groups/direct.yaml"));
    std::os::unix::fs::symlink("../pipe", repo.join("groups/linked.yaml")).unwrap();
    // Opening a FIFO for reading blocks until a writer comes: the timeout catches it.
    let mut command = assert_cmd::Command::cargo_bin("grattr").unwrap();
    let output = command
        .current_dir(repo.path())
        .arg("validate")
        .env_remove("GRATTR_CONFIG")
        .env_remove("GRATTR_ENV")
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("groups/direct.yaml: error: this is something that is not a regular file or directory"),
        "{stderr}"
    );
    assert!(
        stderr.contains("groups/linked.yaml: error: the symlink leads to something that is not a regular file"),
        "{stderr}"
    );
}

#[test]
fn the_secret_key_file_is_its_first_line() {
    let repo = Repo::new().file("key.txt", "file-key\r\nnot part of it\n");
    let usersig = repo.run(&["usersig", "--secret-key-file", "key.txt"]).code(0).into_stdout();
    let claims = grattr::api::usersig::decode(usersig.trim()).unwrap();
    let key = grattr::api::usersig::SecretKey::new("file-key").unwrap();
    grattr::api::usersig::verify(&key, usersig.trim(), APP, "administrator", claims.time).unwrap();

    let repo = repo.file("blank.txt", "\nhidden-secret-value\n");
    repo.run(&["usersig", "--secret-key-file", "blank.txt"])
        .code(1)
        .stdout("")
        .stderr("error: the secret key in blank.txt is empty\n");
}

#[test]
fn import_from_reads_a_hash_inside_a_line_as_part_of_the_id() {
    let server = Server::start(|_| {});
    let client = server.client();
    server.block_on(async { client.set_group_attr(&id("room #1"), &attrs(&[("k", "v")])).await.unwrap() });
    let repo = server.repo().file("ids.txt", "# rooms to adopt\n  # indented comment\nroom #1\n");
    grattr(&repo, &["import", "--from", "ids.txt"]).code(0).stdout_contains("Imported 1 group(s)");
    let written = repo.read("groups/imported.yaml");
    assert!(written.contains("- id: \"room #1\"\n"), "{written}");
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).stdout(
        "grattr plan for sdkappid 1400000000\n\n\
         No changes: the desired state matches what grattr.lock records as applied.\n\n\
         Plan: 0 to create, 0 to update, 0 to delete, 1 unchanged.\n\
         Safety guard: approved — 0 of the 1 recorded group (0%) would be updated or deleted, within the threshold of 30%.\n\
         Cost: no API call.\n",
    );
}

/// The names in `dir`, sorted.
#[cfg(unix)]
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

// Unix only: it makes symlinks, which on Windows need a privilege a test cannot assume.
#[cfg(unix)]
#[test]
fn configured_paths_outside_the_repository_are_refused_before_anything_is_read_or_created() {
    let server = Server::start(|_| {});
    let outside = tempfile::tempdir().unwrap();
    let overlay = outside.path().join("o.yaml");
    std::fs::write(&overlay, "groups:\n  - id: a\n    attributes: {k: stolen}\n").unwrap();
    let base = server.config();
    let repo = server.repo().file("groups/a.yaml", "groups:\n  - id: a\n    attributes: {k: v}\n");
    std::os::unix::fs::symlink(&overlay, repo.join("linked.yaml")).unwrap();
    let depth = repo.path().components().count();
    let relative = format!("{}{}", "../".repeat(depth), overlay.display().to_string().trim_start_matches('/'));
    let shown = outside.path().canonicalize().unwrap().join("o.yaml").display().to_string();
    let root = repo.path().canonicalize().unwrap().display().to_string();

    for written in [overlay.display().to_string(), relative, "linked.yaml".to_string()] {
        std::fs::write(repo.join("grattr.yaml"), format!("{base}overlays: [{written}]\n")).unwrap();
        let line = base.lines().count() + 1;
        let expected = format!(
            "grattr.yaml:{line}:12: error: `overlays: {written}` leads outside the repository ({root}): to {shown}"
        );
        for command in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
            let stderr = grattr(&repo, command).code(1).into_stderr();
            assert!(stderr.contains(&expected), "{command:?} with {written}: lacks {expected:?}:\n{stderr}");
        }
        assert_eq!(server.live("a"), None, "{written}: nothing was applied");
        // The opt-out, on the command line only.
        grattr(&repo, &["validate", "--allow-outside-paths"]).code(0).ignore_stdout().ignore_stderr();
        let stdout = grattr(&repo, &["plan", "--allow-outside-paths"]).code(0).into_stdout();
        assert!(stdout.contains("stolen"), "{stdout}");
    }

    // groups: and lockfile: outside: refused before the lock or the lockfile is created there.
    let record = tempfile::tempdir().unwrap();
    let repo = Repo::new()
        .file("grattr.yaml", &format!("{base}lockfile: {}\n", record.path().join("x.lock").display()))
        .file("groups/a.yaml", "groups:\n  - id: a\n    attributes: {k: v}\n");
    let stderr = repo.run(&["apply", "--yes"]).code(1).into_stderr();
    assert!(stderr.contains("error: `lockfile: /") && stderr.contains("leads outside the repository"), "{stderr}");
    assert_eq!(names_in(record.path()), Vec::<String>::new(), "nothing was created outside");
    let repo = repo.file("grattr.yaml", &format!("{base}groups: {}\n", outside.path().display()));
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    assert!(stderr.contains("error: `groups: /") && stderr.contains("leads outside the repository"), "{stderr}");
    assert!(stderr.contains("grattr.yaml:6:9:"), "the line of `groups:`:\n{stderr}");
    // A default path that is a symlink leading outside is refused too.
    let repo = repo.file("grattr.yaml", &base).remove("groups/a.yaml");
    std::fs::remove_dir(repo.join("groups")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.join("groups")).unwrap();
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    assert!(
        stderr.contains("grattr.yaml:1:1: error: `groups` (by default `groups`) leads outside the repository"),
        "{stderr}"
    );
    // --state-dir is chosen on the command line: outside is what it is for.
    std::fs::remove_file(repo.join("groups")).unwrap();
    let repo = repo.file("groups/a.yaml", "groups:\n  - id: a\n    attributes: {k: v}\n");
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().display().to_string();
    grattr(&repo, &["apply", "--yes", "--state-dir", &state_dir]).code(0).ignore_stdout().ignore_stderr();
    assert!(names_in(state.path()).contains(&"grattr.lock".to_string()), "{:?}", names_in(state.path()));
}
