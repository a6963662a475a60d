//! The record's promises, proved the same way on every store (local files, a real
//! PostgreSQL and an S3-compatible server, moto, started by the test): one writer at a time (by the emulator's own record
//! of when each write arrived), a writer whose lease lapsed writes nothing more, a
//! standby `watch` takes over from a leader that dies, is frozen or loses its
//! database, a CI `apply` and a `watch` share one record, and `grattr state` moves a
//! record between the stores. Unix only: the throwaway PostgreSQL runs as the
//! `postgres` user, and freezing a process is SIGSTOP.
#![cfg(unix)]

mod support;

use grattr::emulator::{Latency, Write};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Repo;
use support::emulator::{KEY, Server, attrs, groups_yaml};
use support::postgres::{PASSWORD, Pg};
use support::s3::{S3, SECRET};
use support::watch::{PATIENCE, Watch, eventually};

/// Where a test keeps the record.
enum Store {
    /// Local files: every repository of the test keeps its record in one state directory.
    Local(tempfile::TempDir),
    /// A throwaway PostgreSQL.
    Postgres(Pg),
    /// A throwaway S3-compatible server.
    S3(S3),
}

/// A short lease, so that tests of lapsing and taking over take seconds.
const LEASE: &str = "2s";

impl Store {
    fn local() -> Store {
        Store::Local(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Store {
        Store::Postgres(Pg::start())
    }

    fn s3() -> Store {
        Store::S3(S3::start())
    }

    /// Every store, for a test that proves a promise on each.
    fn each() -> [Store; 3] {
        [Store::local(), Store::postgres(), Store::s3()]
    }

    /// The stores shared between machines, for a promise only they keep (a lease that
    /// lapses, a record several machines reach).
    fn shared() -> [Store; 2] {
        [Store::postgres(), Store::s3()]
    }

    fn name(&self) -> &'static str {
        match self {
            Store::Local(_) => "local",
            Store::Postgres(_) => "postgres",
            Store::S3(_) => "s3",
        }
    }

    /// How the store's label begins in grattr's messages.
    fn scheme(&self) -> &'static str {
        match self {
            Store::Local(_) => "/",
            Store::Postgres(_) => "postgres://",
            Store::S3(_) => "s3://",
        }
    }

    /// The store goes away, as a database stopped or a network cut.
    fn stop(&mut self) {
        match self {
            Store::Local(_) => unreachable!("local files do not go away"),
            Store::Postgres(pg) => pg.stop(),
            Store::S3(s3) => s3.stop(),
        }
    }

    /// The store comes back, with what it held.
    fn restart(&mut self) {
        match self {
            Store::Local(_) => unreachable!("local files do not go away"),
            Store::Postgres(pg) => pg.restart(),
            Store::S3(s3) => s3.restart(),
        }
    }

    /// The variables that point grattr at the record (and at the emulator's key).
    fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let state = match self {
            Store::Local(dir) => dir.path().display().to_string(),
            Store::Postgres(pg) => pg.url(),
            Store::S3(s3) => {
                env.extend(s3.env().into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
                s3.url("grattr")
            }
        };
        env.extend(
            [("GRATTR_SECRET_KEY", KEY.to_string()), ("GRATTR_STATE", state), ("GRATTR_LEASE_TTL", LEASE.to_string())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    /// Runs grattr in `repo` on this store; the password never shows.
    #[track_caller]
    fn run(&self, repo: &Repo, args: &[&str]) -> support::Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = repo.run_with_env(args, &env);
        assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD), "the password leaked");
        assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET), "the S3 secret leaked");
        assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the secret key leaked");
        run
    }

    /// Starts grattr in `repo` on this store without waiting, its output captured.
    fn spawn(&self, repo: &Repo, args: &[&str]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grattr"));
        command.current_dir(repo.path()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.envs(self.env()).env("NO_PROXY", "*");
        command.spawn().unwrap()
    }

    /// Starts `grattr watch` in `repo` on this store.
    fn watch(&self, repo: &Repo) -> Watch {
        let env = self.env();
        Watch::start_command(repo, &[], "200ms", "warn,grattr=info", |command| {
            command.envs(env);
        })
    }

    /// The record, as `grattr state pull` writes it: group → attribute `v`.
    fn recorded(&self, repo: &Repo) -> BTreeMap<String, String> {
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("pulled.lock");
        self.run(repo, &["state", "pull", "--out", file.to_str().unwrap()]).code(0).ignore_stdout();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let groups = json["groups"].as_object().cloned().unwrap_or_default();
        groups.into_iter().map(|(id, g)| (id, g["attributes"]["v"].as_str().unwrap_or_default().to_string())).collect()
    }
}

/// `pg`'s URL without its password, which comes from `PGPASSWORD`, as users write it.
fn url_without_password(pg: &Pg) -> String {
    pg.url().replace(&format!(":{PASSWORD}"), "")
}

/// A repository of the emulator's app declaring `groups` groups `g-NN`, each `v: {value}`.
fn repo(server: &Server, groups: usize, value: &str) -> Repo {
    let ids: Vec<String> = (0..groups).map(|i| format!("g-{i:03}")).collect();
    let pairs = [("v", value)];
    let declared: Vec<(&str, &[(&str, &str)])> = ids.iter().map(|id| (id.as_str(), &pairs[..])).collect();
    server.repo().file("groups/all.yaml", &groups_yaml(&declared))
}

/// The value `v` of each write, in the order the emulator applied them.
fn written(writes: &[Write]) -> Vec<String> {
    writes.iter().map(|w| w.attributes.get("v").unwrap_or_default().to_string()).collect()
}

/// Runs of one value in a row: `a a b b a` is `[a, b, a]`.
fn runs(values: &[String]) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for value in values {
        if runs.last() != Some(value) {
            runs.push(value.clone());
        }
    }
    runs
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child this test spawned.
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn wait(child: Child) -> (i32, String) {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains(KEY) && !stderr.contains(SECRET),
        "a secret leaked: {stderr}"
    );
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn racing_writers_write_one_at_a_time_on_every_store() {
    for store in Store::each() {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(2)));
        // Four checkouts that each want every group to hold their own value: each run
        // changes all 20 groups, so any overlap of two runs would interleave their values.
        let repos: Vec<Repo> = (0..4).map(|i| repo(&server, 20, &format!("p{i}"))).collect();
        let children: Vec<Child> =
            repos.iter().map(|r| store.spawn(r, &["apply", "--yes", "--force", "--lock-timeout", "60s"])).collect();
        for child in children {
            let (code, stderr) = wait(child);
            assert_eq!(code, 0, "{}: {stderr}", store.name());
        }
        let values = written(&server.emulator().writes());
        assert_eq!(values.len(), 80, "{}: every run wrote its 20 groups", store.name());
        let runs = runs(&values);
        assert_eq!(runs.len(), 4, "{}: the writes of two runs interleaved: {runs:?}", store.name());
        let last = runs.last().unwrap().clone();
        let recorded = store.recorded(&repos[0]);
        assert_eq!(recorded.len(), 20, "{}", store.name());
        assert!(
            recorded.values().all(|v| *v == last),
            "{}: the record is the last writer's: {recorded:?}",
            store.name()
        );
    }
}

#[test]
fn a_second_writer_is_refused_and_names_the_holder() {
    for store in Store::each() {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(20)));
        let (first, second) = (repo(&server, 60, "a"), repo(&server, 60, "b"));
        let running = store.spawn(&first, &["apply", "--yes", "--concurrency", "1"]);
        eventually(PATIENCE, "the first apply writes", || !server.emulator().writes().is_empty());
        let refused = store.run(&second, &["apply", "--yes"]).code(1).into_stderr();
        assert!(refused.contains("grattr apply (pid ") && refused.contains(&running.id().to_string()), "{refused}");
        assert!(refused.contains("nothing was applied"), "{refused}");
        assert_eq!(wait(running).0, 0);
        assert!(written(&server.emulator().writes()).iter().all(|v| v == "a"), "{}: the second wrote", store.name());
    }
}

#[test]
fn a_writer_frozen_past_its_lease_writes_and_records_nothing_more() {
    for store in Store::shared() {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(20)));
        let (frozen, next) = (repo(&server, 100, "a"), repo(&server, 100, "b"));
        let first = store.spawn(&frozen, &["apply", "--yes", "--concurrency", "1"]);
        eventually(PATIENCE, "the first apply writes", || server.emulator().writes().len() >= 5);
        signal(&first, libc::SIGSTOP);
        let stopped_at = server.emulator().writes().len();
        // Past the lease: the store lets the next writer in.
        std::thread::sleep(Duration::from_millis(2500));
        store
            .run(&next, &["apply", "--yes", "--force", "--lock-timeout", "30s"])
            .code(0)
            .ignore_stdout()
            .ignore_stderr();
        signal(&first, libc::SIGCONT);
        let (code, stderr) = wait(first);
        assert_eq!(code, 1, "{stderr}");
        // Lost, or lapsed with records of its last calls not written (a bucket writes batches
        // a tenth of a second apart): either way it says its lease is gone.
        assert!(stderr.contains("lease") && (stderr.contains("lost") || stderr.contains("lapsed")), "{stderr}");
        let values = written(&server.emulator().writes());
        let first_b = values.iter().position(|v| v == "b").unwrap();
        assert!(first_b >= stopped_at, "{}: b wrote while a was running", store.name());
        // Nothing is started after waking: every attempt asks the lease first. But a process
        // frozen in the instant between that question and the send sends that one call when
        // it wakes (the API takes no fencing token): at most the calls in flight (one here),
        // and it says so.
        let late = values[first_b..].iter().filter(|v| *v == "a").count();
        assert!(
            late <= 1,
            "{}: the frozen writer wrote {late} times after its lease lapsed: {:?}",
            store.name(),
            runs(&values)
        );
        if late == 1 {
            assert!(stderr.contains("answered after this process's lease lapsed"), "{}: {stderr}", store.name());
        }
        let recorded = store.recorded(&next);
        assert_eq!(recorded.len(), 100);
        assert!(recorded.values().all(|v| v == "b"), "the frozen writer recorded after its lease lapsed: {recorded:?}");
    }
}

/// Waits until exactly one of `watches` leads; returns its index.
fn leader(server: &Server, watches: &[&Watch]) -> usize {
    let mut leading = None;
    eventually(PATIENCE, "one watch leads", || {
        let gauges: Vec<f64> = watches.iter().map(|w| w.metric(server, "grattr_leader")).collect();
        leading = gauges.iter().position(|g| *g == 1.0).filter(|_| gauges.iter().filter(|g| **g == 1.0).count() == 1);
        leading.is_some()
    });
    leading.unwrap()
}

#[test]
fn a_standby_watch_takes_over_from_a_leader_that_dies() {
    for store in Store::each() {
        let server = Server::start(|_| {});
        let repo = repo(&server, 5, "one");
        let (a, b) = (store.watch(&repo), store.watch(&repo));
        let index = leader(&server, &[&a, &b]);
        let (mut leading, standby) = if index == 0 { (a, b) } else { (b, a) };
        eventually(PATIENCE, "the leader applies", || server.live("g-004") == Some(attrs(&[("v", "one")])));
        let (code, text) = standby.readyz(&server);
        assert_eq!(code, 200, "{text}");
        assert!(text.starts_with("standby: the record's lease is held by grattr watch (pid "), "{text}");
        assert_eq!(standby.metric(&server, "grattr_leader"), 0.0);

        leading.child.kill().unwrap();
        leading.child.wait().unwrap();
        let killed = Instant::now();
        std::fs::write(repo.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "two")])])).unwrap();
        eventually(PATIENCE, "the standby applies the change", || server.live("g-000") == Some(attrs(&[("v", "two")])));
        eprintln!("{}: took over and applied {:?} after the leader was killed", store.name(), killed.elapsed());
        assert_eq!(standby.metric(&server, "grattr_leader"), 1.0);
        // Nothing applied twice: each group was written once with each value.
        let mut seen = std::collections::BTreeSet::new();
        for write in server.emulator().writes() {
            let value = write.attributes.get("v").unwrap_or_default().to_string();
            assert!(seen.insert((write.group.clone(), value)), "{} applied twice", write.group);
        }
    }
}

#[test]
fn a_frozen_leader_that_wakes_applies_nothing_more() {
    for store in Store::shared() {
        let server = Server::start(|_| {});
        let repo = repo(&server, 3, "one");
        let (a, b) = (store.watch(&repo), store.watch(&repo));
        let index = leader(&server, &[&a, &b]);
        let (frozen, standby) = if index == 0 { (a, b) } else { (b, a) };
        eventually(PATIENCE, "the leader applies", || server.live("g-002") == Some(attrs(&[("v", "one")])));
        signal(&frozen.child, libc::SIGSTOP);
        let stopped = Instant::now();
        eventually(PATIENCE, "the standby leads", || standby.metric(&server, "grattr_leader") == 1.0);
        eprintln!("{}: a standby led {:?} after the leader froze", store.name(), stopped.elapsed());
        std::fs::write(repo.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "two")])])).unwrap();
        eventually(PATIENCE, "the new leader applies", || server.live("g-000") == Some(attrs(&[("v", "two")])));
        signal(&frozen.child, libc::SIGCONT);
        frozen.wait_for_log("lost the writer's lease");
        eventually(PATIENCE, "the woken leader stands by", || frozen.metric(&server, "grattr_leader") == 0.0);
        std::fs::write(repo.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "three")])])).unwrap();
        eventually(PATIENCE, "the leader applies", || server.live("g-000") == Some(attrs(&[("v", "three")])));
        standby.settle(&server, &repo);
        let g0: Vec<String> = server
            .emulator()
            .writes()
            .iter()
            .filter(|w| w.group == "g-000")
            .map(|w| w.attributes["v"].to_string())
            .collect();
        assert_eq!(
            g0,
            ["one", "two", "three"],
            "{}: each change written once, by the leader:\n{}",
            store.name(),
            frozen.log()
        );
    }
}

#[test]
fn a_store_lost_and_back_under_watch_and_apply_converges() {
    for mut store in Store::shared() {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(20)));
        let repo_watch = repo(&server, 2, "one");
        let watch = store.watch(&repo_watch);
        eventually(PATIENCE, "the watch leads", || watch.metric(&server, "grattr_leader") == 1.0);
        // An apply of other groups in flight when the database goes away.
        let other = server.repo().file("groups/other.yaml", &support::emulator::many_groups("o", 200));
        let apply = store.spawn(&other, &["apply", "--yes", "--concurrency", "1", "--lock-timeout", "30s"]);
        eventually(PATIENCE, "the apply writes", || {
            server.emulator().writes().iter().any(|w| w.group.starts_with("o-"))
        });
        store.stop();
        let (code, stderr) = wait(apply);
        assert_eq!(code, 1, "the apply stops once its lease cannot be kept: {stderr}");
        let after_stop = server.emulator().writes().len();
        watch.wait_for_log("lost the writer's lease");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(server.emulator().writes().len(), after_stop, "nothing is written without a lease");
        store.restart();
        eventually(PATIENCE, "the watch leads again", || watch.metric(&server, "grattr_leader") == 1.0);
        store.run(&other, &["apply", "--yes", "--lock-timeout", "30s"]).code(0).ignore_stdout().ignore_stderr();
        for i in 0..200 {
            let id = format!("o-{i:04}");
            assert_eq!(server.live(&id), Some(attrs(&[("v", id.as_str())])), "{id}");
        }
        // Each group written once, but those in flight when the database went: the call
        // whose record could not be written, and (one call at a time) the one started
        // before that was known. None started after.
        let mut writes: BTreeMap<String, usize> = BTreeMap::new();
        for write in server.emulator().writes().iter().filter(|w| w.group.starts_with("o-")) {
            *writes.entry(write.group.clone()).or_default() += 1;
        }
        let twice = writes.values().filter(|n| **n > 1).count();
        assert!(twice <= 2, "{}: {twice} groups written twice", store.name());
        std::fs::write(repo_watch.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "two")])])).unwrap();
        eventually(PATIENCE, "the watch applies again", || server.live("g-000") == Some(attrs(&[("v", "two")])));
    }
}

#[test]
fn a_ci_apply_and_a_watch_share_one_record_and_neither_repeats_the_other() {
    for store in Store::shared() {
        let server = Server::start(|_| {});
        let (served, ci) = (repo(&server, 3, "one"), repo(&server, 3, "one"));
        let watch = Watch::start_command(&served, &["--settle", "3s"], "200ms", "warn,grattr=info", |command| {
            command.envs(store.env());
        });
        eventually(PATIENCE, "the watch applies", || server.live("g-002") == Some(attrs(&[("v", "one")])));
        // A merge: CI applies it from its checkout while the server's checkout is pulled.
        let merged = groups_yaml(&[("g-000", &[("v", "two")]), ("g-001", &[("v", "one")]), ("g-002", &[("v", "one")])]);
        std::fs::write(served.join("groups/all.yaml"), &merged).unwrap();
        std::fs::write(ci.join("groups/all.yaml"), &merged).unwrap();
        store
            .run(&ci, &["apply", "--yes", "--lock-timeout", "30s"])
            .code(0)
            .stdout_contains("1 applied")
            .ignore_stderr();
        watch.settle(&server, &served);
        watch.wait_for_log("the record was changed by another writer");
        let g0: Vec<String> = server
            .emulator()
            .writes()
            .iter()
            .filter(|w| w.group == "g-000")
            .map(|w| w.attributes["v"].to_string())
            .collect();
        assert_eq!(g0, ["one", "two"], "the watch did not apply again what CI applied:\n{}", watch.log());
        // And CI plans against what the watch applied: nothing to do.
        store.run(&ci, &["plan", "--detailed-exitcode"]).code(0).stdout_contains("No changes").ignore_stderr();
    }
}

#[test]
fn state_push_and_pull_move_a_record_between_files_and_a_shared_store() {
    for store in Store::shared() {
        let server = Server::start(|_| {});
        let repo = repo(&server, 4, "one");
        // Applied with the record in the repository's files.
        repo.run_with_env(&["apply", "--yes"], &[("GRATTR_SECRET_KEY", KEY)]).code(0).ignore_stdout();
        let original = repo.read("grattr.lock");
        store
            .run(&repo, &["state", "push"])
            .code(0)
            .stdout_contains(&format!("Pushed 4 group(s) from grattr.lock to {}", store.scheme()));
        // Pushed once: a second push would replace what the store holds.
        let again = store.run(&repo, &["state", "push"]).code(1).into_stderr();
        assert!(again.contains("already holds 4 group(s): nothing was pushed (--force replaces it)"), "{again}");
        store.run(&repo, &["plan", "--detailed-exitcode"]).code(0).stdout_contains("No changes").ignore_stderr();
        let shown = store.run(&repo, &["state", "show", "--format", "json"]).code(0).json();
        assert_eq!(shown["groups"], 4);
        assert_eq!(shown["held"], false);
        std::fs::remove_file(repo.join("grattr.lock")).unwrap();
        store
            .run(&repo, &["state", "pull"])
            .code(0)
            .stdout_contains(&format!("Wrote 4 group(s) from {}", store.scheme()));
        assert_eq!(repo.read("grattr.lock"), original, "{}: the record comes back byte for byte", store.name());
    }
}

#[test]
fn state_show_and_unlock_name_the_holder_and_clear_only_when_forced() {
    for store in Store::shared() {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(20)));
        let repo = repo(&server, 200, "a");
        let mut running = store.spawn(&repo, &["apply", "--yes", "--concurrency", "1"]);
        eventually(PATIENCE, "the apply writes", || !server.emulator().writes().is_empty());
        signal(&running, libc::SIGSTOP);
        let shown = store.run(&repo, &["state", "show"]).code(0).into_stdout();
        assert!(shown.contains(&format!("Lease:   held by grattr apply (pid {} on ", running.id())), "{shown}");
        let refused = store.run(&repo, &["state", "unlock"]).code(1).into_stderr();
        assert!(
            refused.contains("grattr state unlock --force") && refused.contains("the writer lease by grattr apply"),
            "{refused}"
        );
        store
            .run(&repo, &["state", "unlock", "--force"])
            .code(0)
            .stdout_contains(&format!("Cleared the writer lease on {}", store.scheme()));
        let shown = store.run(&repo, &["state", "show"]).code(0).into_stdout();
        assert!(shown.contains("Lease:   free"), "{shown}");
        signal(&running, libc::SIGCONT);
        running.kill().unwrap();
        running.wait().unwrap();
    }
}

#[test]
fn a_state_url_with_a_wrong_password_is_a_clear_error_that_never_shows_it() {
    let pg = Pg::start();
    let server = Server::start(|_| {});
    let repo = repo(&server, 1, "a");
    let url = pg.url().replace(PASSWORD, "not-the-password-Xy7");
    let run = repo.run_with_env(&["plan", "--state", &url], &[]).code(1);
    let stderr = run.into_stderr();
    assert!(!stderr.contains("not-the-password-Xy7"), "{stderr}");
    assert!(stderr.contains("cannot be used") && stderr.contains("password authentication failed"), "{stderr}");
}

#[test]
fn an_environment_keeps_its_record_in_its_own_row() {
    let pg = Pg::start();
    let server = Server::start(|_| {});
    let url = url_without_password(&pg);
    let config = format!(
        "admin: administrator\nendpoint: {}\nstate: {url}\nenvironments:\n  staging:\n    sdkappid: 1400000000\n  production:\n    sdkappid: 1400000000\n",
        server.emulator().base_url()
    );
    let repo =
        Repo::new().file("grattr.yaml", &config).file("groups/a.yaml", &groups_yaml(&[("g-000", &[("v", "a")])]));
    let env = [("GRATTR_SECRET_KEY", KEY), ("PGPASSWORD", PASSWORD)];
    repo.run_with_env(&["apply", "--yes", "--env", "staging"], &env)
        .code(0)
        .stdout_contains("Recorded 1 group(s) in postgres://");
    assert!(!repo.join("grattr.lock").exists(), "the record is in the database, not in the repository");
    repo.run_with_env(&["plan", "--env", "staging", "--detailed-exitcode"], &env).code(0).ignore_stdout();
    repo.run_with_env(&["plan", "--env", "production", "--detailed-exitcode"], &env).code(2).ignore_stdout();
    let _ = Path::new(".");
}

#[test]
fn import_records_into_the_store_it_is_pointed_at() {
    for store in Store::each() {
        let server = Server::start(|_| {});
        server
            .block_on(server.client().set_group_attr(&support::emulator::id("lobby"), &attrs(&[("v", "live")])))
            .unwrap();
        let repo = server.repo().dir("groups");
        store
            .run(&repo, &["import", "lobby", "--out", "groups/imported.yaml"])
            .code(0)
            .stdout_contains("Imported 1 group(s)");
        assert!(!repo.join("grattr.lock").exists(), "{}: recorded in the store, not beside grattr.yaml", store.name());
        assert_eq!(
            store.recorded(&repo),
            BTreeMap::from([("lobby".to_string(), "live".to_string())]),
            "{}",
            store.name()
        );
        store.run(&repo, &["plan", "--detailed-exitcode"]).code(0).stdout_contains("No changes").ignore_stderr();
    }
}

#[test]
fn a_role_that_may_only_read_the_record_can_plan() {
    let pg = Pg::start();
    let server = Server::start(|_| {});
    let repo = repo(&server, 1, "a");
    let url = url_without_password(&pg);
    let env = [("GRATTR_SECRET_KEY", KEY), ("PGPASSWORD", PASSWORD)];
    repo.run_with_env(&["apply", "--yes", "--state", &url], &env).code(0).ignore_stdout();
    pg.sql(
        "postgres",
        "CREATE ROLE reader LOGIN PASSWORD 'reader-Pw-7'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
    );
    let reader = url.replacen("postgres://postgres@", "postgres://reader@", 1);
    let as_reader = [("PGPASSWORD", "reader-Pw-7")];
    repo.run_with_env(&["plan", "--state", &reader, "--detailed-exitcode"], &as_reader)
        .code(0)
        .stdout_contains("No changes");
    // An app no writer has recorded yet reads as empty (the reader cannot make its row),
    // and the reader cannot write.
    let other = Repo::new()
        .file("grattr.yaml", &server.config().replace("1400000000", "1400000001"))
        .file("groups/all.yaml", &repo.read("groups/all.yaml"));
    other
        .run_with_env(&["plan", "--state", &reader, "--detailed-exitcode"], &as_reader)
        .code(2)
        .stdout_contains("1 to create");
    let refused = repo.run_with_env(
        &["apply", "--yes", "--state", &reader],
        &[("PGPASSWORD", "reader-Pw-7"), ("GRATTR_SECRET_KEY", KEY)],
    );
    let stderr = refused.code(1).into_stderr();
    assert!(stderr.contains("permission denied") && !stderr.contains("reader-Pw-7"), "{stderr}");
}

#[test]
fn a_state_directory_never_turns_a_shared_record_into_local_files() {
    let pg = Pg::start();
    let server = Server::start(|_| {});
    let url = url_without_password(&pg);
    let repo = repo(&server, 1, "a");
    std::fs::write(repo.join("grattr.yaml"), format!("{}state: {url}\n", server.config())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    // An image's ENV GRATTR_STATE_DIR (for HEAD mode's snapshots), which a container cannot unset.
    let env = [("GRATTR_STATE_DIR", dir), ("PGPASSWORD", PASSWORD), ("GRATTR_SECRET_KEY", KEY)];
    repo.run_with_env(&["apply", "--yes"], &env).code(0).stdout_contains("Recorded 1 group(s) in postgres://");
    repo.run_with_env(&["apply", "--yes", "--state", &url], &env).code(0).stdout_contains("No changes");
    assert!(std::fs::read_dir(dir).unwrap().next().is_none(), "nothing recorded in the state directory");
    // A `--state` path is local files, whatever grattr.yaml says.
    repo.run_with_env(&["plan", "--state", dir, "--detailed-exitcode"], &env).code(2).ignore_stdout();
}
