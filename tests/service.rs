//! What the service really answers, as its documentation and its users report it:
//! a never-created group (10015) and a dismissed one (10010) both count as missing,
//! Community groups are never cleared with `clear_group_attr`, the documented
//! codes of odd requests, the backup domains, and one table of codes for all.

mod support;

use grattr::api::client::{ApiError, Client, ClientConfig, ErrorKind};
use grattr::api::codes;
use grattr::api::usersig::{self, SecretKey};
use grattr::api::wire::{GroupType, Operation};
use grattr::model::GroupId;
use support::emulator::{KEY, Server, attrs, grattr, groups_yaml, id};

fn code<T: std::fmt::Debug>(result: Result<T, ApiError>) -> u32 {
    result.unwrap_err().code().expect("the service answered with a code")
}

/// An emulator where only the configured groups exist.
fn strict(groups: &[&str]) -> Server {
    let groups: Vec<(GroupId, GroupType)> = groups.iter().map(|g| (id(g), GroupType::implied_by(&id(g)))).collect();
    Server::start(move |config| {
        config.auto_create_groups = false;
        config.groups = groups;
    })
}

#[test]
fn the_emulator_tells_a_dismissed_group_from_one_never_created() {
    let server = strict(&["room", "gone"]);
    let client = server.client();
    server.block_on(async {
        assert_eq!(code(client.get_group_attr(&id("never")).await), codes::INVALID_GROUP_ID.code);
        assert_eq!(code(client.set_group_attr(&id("never"), &attrs(&[("a", "1")])).await), 10015);
        client.destroy_group(&id("room")).await.unwrap();
        assert_eq!(code(client.get_group_attr(&id("room")).await), codes::GROUP_NOT_FOUND.code);
        assert_eq!(code(client.clear_group_attr(&id("room")).await), 10010);
    });
    server.emulator().dismiss(&id("gone"));
    server.block_on(async {
        assert_eq!(code(client.get_group_attr(&id("gone")).await), 10010);
        assert_eq!(code(client.delete_group_attr(&id("gone"), &["k".into()]).await), 10010);
        // The id is free again once its group was dismissed.
        client.create_group(GroupType::Public, "Again", Some(&id("gone"))).await.unwrap();
        assert!(client.get_group_attr(&id("gone")).await.unwrap().is_empty());
    });
}

#[test]
fn auto_creation_never_revives_a_dismissed_group() {
    let server = Server::start(|config| config.auto_create_groups = true);
    let client = server.client();
    server.block_on(async {
        client.set_group_attr(&id("room"), &attrs(&[("a", "1")])).await.unwrap();
        client.destroy_group(&id("room")).await.unwrap();
        assert_eq!(code(client.set_group_attr(&id("room"), &attrs(&[("a", "1")])).await), 10010);
    });
}

#[test]
fn drift_reports_a_never_created_group_as_missing() {
    let server = strict(&["here"]);
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("here", &[("k", "1")]), ("never", &[("k", "1")])]));
    let json = grattr(&repo, &["drift", "--format", "json"]).code(0).json();
    let never = json["groups"].as_array().unwrap().iter().find(|g| g["group_id"] == "never").unwrap().clone();
    assert_eq!(never["status"], "missing", "{json}");
    assert_eq!(never["code"], 10015);
    grattr(&repo, &["drift", "--detailed-exitcode"]).code(2).stdout_contains(
        "  ? never is missing: the group does not exist  (groups/a.yaml:5)\n      get_group_attr: invalid group id (the group does not exist) [10015]",
    );
}

#[test]
fn a_refresh_plans_a_never_created_group_like_a_dismissed_one() {
    let server = strict(&["here", "gone"]);
    server.emulator().dismiss(&id("gone"));
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[("here", &[("k", "1")]), ("never", &[("k", "1")]), ("gone", &[("k", "1")])]),
    );
    grattr(&repo, &["plan", "--refresh"])
        .code(0)
        .stdout_contains("+ never will be created")
        .stdout_contains("+ gone will be created");
}

#[test]
fn apply_says_a_never_created_group_does_not_exist() {
    let server = strict(&["here"]);
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("here", &[("k", "1")]), ("never", &[("k", "1")])]));
    grattr(&repo, &["apply", "--yes"])
        .code(1)
        .stdout_contains("[10015]")
        .stdout_contains("hint: the group does not exist (it was never created")
        .stderr_contains("failed: never: set_group_attr: invalid group id (the group does not exist) [10015]");
}

#[test]
fn import_of_a_never_created_group_says_it_does_not_exist() {
    let server = strict(&["here"]);
    let repo = server.repo();
    grattr(&repo, &["import", "never", "here"])
        .code(1)
        .stdout(
            "Imported 1 group(s) into groups/imported.yaml and recorded them in grattr.lock; `grattr plan` shows no \
             change for them.\n",
        )
        .stderr_contains("cannot import never")
        .stderr_contains("the group does not exist");
}

#[test]
fn a_community_group_is_pruned_and_cleared_without_clear_group_attr() {
    let server = strict(&["@TGS#_@TGS#cPRUNE", "@TGS#_@TGS#cEMPTY", "plain"]);
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[
            ("@TGS#_@TGS#cPRUNE", &[("a", "1"), ("b", "2")]),
            ("@TGS#_@TGS#cEMPTY", &[("a", "1")]),
            ("plain", &[("a", "1")]),
        ]),
    );
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 3 applied, 0 failed");
    // Emptied in the YAML: cleared; removed from it: pruned.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("@TGS#_@TGS#cEMPTY", &[]), ("plain", &[("a", "1")])]));
    grattr(&repo, &["apply", "--yes", "--prune"]).code(0).stdout_contains("Apply complete: 2 applied, 0 failed");
    assert_eq!(server.live("@TGS#_@TGS#cPRUNE"), Some(attrs(&[])));
    assert_eq!(server.live("@TGS#_@TGS#cEMPTY"), Some(attrs(&[])));
    let stats = server.emulator().stats();
    assert_eq!(stats.calls_to(Operation::ClearGroupAttr), 0, "{stats:?}");
    assert_eq!(stats.calls_to(Operation::DeleteGroupAttr), 2, "{stats:?}");
    // Other groups are still cleared in one call.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("@TGS#_@TGS#cEMPTY", &[]), ("plain", &[])]));
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    assert_eq!(server.emulator().stats().calls_to(Operation::ClearGroupAttr), 1);
}

#[test]
fn a_community_key_that_vanished_falls_back_to_the_live_keys() {
    let server = strict(&["@TGS#_@TGS#cGONE"]);
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("@TGS#_@TGS#cGONE", &[("a", "1"), ("b", "2")])]));
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    let client = server.client();
    server.block_on(client.delete_group_attr(&id("@TGS#_@TGS#cGONE"), &["a".into()])).unwrap();
    let repo = repo.file("groups/a.yaml", "groups: []\n");
    grattr(&repo, &["apply", "--yes", "--prune"])
        .code(0)
        .stdout_contains("Apply complete: 1 applied, 0 failed")
        .stderr(support::NO_GROUPS);
    assert_eq!(server.live("@TGS#_@TGS#cGONE"), Some(attrs(&[])));
    assert_eq!(server.emulator().stats().calls_to(Operation::ClearGroupAttr), 0);
}

#[test]
fn a_long_key_to_delete_is_refused_before_its_existence_is_checked() {
    let server = strict(&["room"]);
    let client = server.client();
    server.block_on(async {
        let long = "k".repeat(33);
        assert_eq!(code(client.delete_group_attr(&id("room"), std::slice::from_ref(&long)).await), 10045);
        assert_eq!(code(client.delete_group_attr(&id("never"), &[long]).await), 10045);
        assert_eq!(code(client.delete_group_attr(&id("room"), &["k".repeat(32)]).await), 10050);
    });
}

#[test]
fn a_request_without_sdkappid_is_answered_60012() {
    let server = strict(&["room"]);
    let sig = usersig::generate(&SecretKey::new(KEY).unwrap(), 1400000000, "administrator", 3600, now());
    let url = format!(
        "{}/{}?identifier=administrator&usersig={}&random=1&contenttype=json",
        server.emulator().base_url(),
        Operation::GetGroupAttr.path(),
        sig.expose()
    );
    let body: serde_json::Value = server.block_on(async {
        grattr::api::client::install_tls_provider();
        let answer = reqwest::Client::new().post(&url).body(r#"{"GroupId": "room"}"#).send().await.unwrap();
        answer.json().await.unwrap()
    });
    assert_eq!(body["ErrorCode"], codes::SDKAPPID_REQUIRED.code);
    assert_eq!(body["ActionStatus"], "FAIL");
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn an_empty_reset_is_refused_locally_not_by_the_service() {
    let server = strict(&["room"]);
    let error = server.block_on(server.client().set_group_attr(&id("room"), &attrs(&[]))).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Refused { .. }), "{error:?}");
    assert_eq!(error.code(), None, "no code: the service was never asked");
    assert_eq!(error.attempts, 0);
    assert!(error.to_string().contains("not sent"), "{error}");
    assert_eq!(server.emulator().stats().calls_to(Operation::SetGroupAttr), 0);
}

/// A loopback address where nothing listens: connections are refused at once.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn an_unreachable_domain_fails_over_to_the_backup() {
    let server = strict(&["room"]);
    let mut config = ClientConfig::new(dead_url(), 1400000000, "administrator", SecretKey::new(KEY).unwrap());
    config.backup_url = Some(server.emulator().base_url());
    config.connect_timeout = std::time::Duration::from_secs(2);
    let client = Client::new(config).unwrap();
    server.block_on(async {
        client.set_group_attr(&id("room"), &attrs(&[("a", "1")])).await.unwrap();
        assert_eq!(client.get_group_attr(&id("room")).await.unwrap(), attrs(&[("a", "1")]));
    });
    let stats = server.emulator().stats();
    assert_eq!(stats.total, 2, "each call reached the backup once: {stats:?}");
}

#[test]
fn the_client_stays_on_the_domain_that_answered_last() {
    let mut main = strict(&["room"]);
    let backup = strict(&["room"]);
    let mut config =
        ClientConfig::new(main.emulator().base_url(), 1400000000, "administrator", SecretKey::new(KEY).unwrap());
    config.backup_url = Some(backup.emulator().base_url());
    let client = Client::new(config).unwrap();
    let read = |server: &Server| server.block_on(client.get_group_attr(&id("room"))).unwrap();
    read(&main);
    let addr = main.stop();
    read(&backup);
    main.restart(addr);
    read(&backup);
    assert_eq!(main.emulator().stats().total, 0, "the restarted main domain was not asked");
    assert_eq!(backup.emulator().stats().total, 2);
}

#[test]
fn a_region_uses_its_documented_backup_domain() {
    let config = ClientConfig::new("https://adminapisgp.im.qcloud.com", 1, "a", SecretKey::new(KEY).unwrap());
    assert_eq!(config.backup_url.as_deref(), Some("https://adminapisgp.my-imcloud.com"));
    let custom = ClientConfig::new("http://127.0.0.1:9000", 1, "a", SecretKey::new(KEY).unwrap());
    assert_eq!(custom.backup_url, None, "an endpoint of one's own has no backup");
}

/// Every service code in `src/` is named in the code table (or the limits table):
/// elsewhere a five-digit number from 10000 to 99999 is a bare code. Test modules
/// (from `#[cfg(test)]` on) may use numbers, to say what the service answers.
#[test]
fn no_bare_service_codes_outside_the_tables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = [root.join("api/codes.rs"), root.join("model/limits.rs")];
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !allowed.contains(&path) {
                let text = std::fs::read_to_string(&path).unwrap();
                for (number, line) in text.lines().take_while(|l| l.trim() != "#[cfg(test)]").enumerate() {
                    for code in bare_codes(line) {
                        found.push(format!("{}:{}: {code}", path.strip_prefix(&root).unwrap().display(), number + 1));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "name these codes in src/api/codes.rs:\n{}", found.join("\n"));
}

/// The runs of exactly five digits from 10000 to 99999 in `line`, not part of a
/// longer word or number (`1400000000`, `10_000` and `0x12345` are not codes).
fn bare_codes(line: &str) -> Vec<u32> {
    let bytes = line.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    let mut codes = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !word(bytes[i - 1])) {
            let end = (i..bytes.len()).find(|&j| !bytes[j].is_ascii_digit()).unwrap_or(bytes.len());
            if end - i == 5 && (end == bytes.len() || !word(bytes[end])) {
                let n: u32 = line[i..end].parse().unwrap();
                if n >= 10000 {
                    codes.push(n);
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    codes
}

#[test]
fn the_scanner_finds_codes_and_nothing_else() {
    assert_eq!(bare_codes("Some(10007) || x == 60012;"), vec![10007, 60012]);
    assert_eq!(bare_codes("1400000000 10_000 0x12345 v1.10050 09999 abc12345"), Vec::<u32>::new());
}
