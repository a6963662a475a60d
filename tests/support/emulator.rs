//! An emulator on 127.0.0.1 for the length of a test, and helpers to write group files.

use grattr::api::client::{Client, ClientConfig};
use grattr::api::usersig::SecretKey;
use grattr::api::wire::Operation;
use grattr::emulator::{Emulator, EmulatorConfig};
use grattr::model::{AttributeSet, GroupId};

pub const KEY: &str = "apply-test-secret-key";

/// An emulator served by its own runtime for the length of a test.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    emulator: Option<Emulator>,
    config: EmulatorConfig,
}

impl Server {
    pub fn start(configure: impl FnOnce(&mut EmulatorConfig)) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut config = EmulatorConfig::new(1400000000, "administrator", SecretKey::new(KEY).unwrap());
        config.auto_create_groups = true;
        configure(&mut config);
        let emulator = runtime.block_on(Emulator::start(config.clone(), "127.0.0.1:0".parse().unwrap())).unwrap();
        Server { runtime, emulator: Some(emulator), config }
    }

    /// Stops the emulator (an outage); [`Server::restart`] brings it back on the same port.
    pub fn stop(&mut self) -> std::net::SocketAddr {
        let emulator = self.emulator.take().unwrap();
        let addr = emulator.addr();
        self.runtime.block_on(emulator.shutdown()).unwrap();
        addr
    }

    /// Starts the emulator again on `addr`, with no groups but those configured.
    pub fn restart(&mut self, addr: std::net::SocketAddr) {
        let emulator = self.runtime.block_on(Emulator::start(self.config.clone(), addr)).unwrap();
        self.emulator = Some(emulator);
    }

    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().unwrap()
    }

    pub fn config(&self) -> String {
        format!(
            "sdkappid: 1400000000\nadmin: administrator\nendpoint: {}\nrate_limit: 200\nrequest_timeout: 2s\n",
            self.emulator().base_url()
        )
    }

    /// A repository whose `grattr.yaml` is [`Server::config`].
    pub fn repo(&self) -> super::Repo {
        super::Repo::new().file("grattr.yaml", &self.config())
    }

    pub fn sets(&self) -> u64 {
        self.emulator().stats().calls_to(Operation::SetGroupAttr)
    }

    pub fn live(&self, group: &str) -> Option<AttributeSet> {
        self.emulator().attributes(&GroupId::parse(group).unwrap())
    }

    /// A client of the emulator, as another program (or a member's app) would use.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(
            self.emulator().base_url(),
            1400000000,
            "administrator",
            SecretKey::new(KEY).unwrap(),
        ))
        .unwrap()
    }

    /// Runs a future on the emulator's runtime.
    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// Reads a group through the REST API, as a user would.
    pub fn get(&self, group: &str) -> AttributeSet {
        let client = Client::new(ClientConfig::new(
            self.emulator().base_url(),
            1400000000,
            "administrator",
            SecretKey::new(KEY).unwrap(),
        ))
        .unwrap();
        self.runtime.block_on(client.get_group_attr(&GroupId::parse(group).unwrap())).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            let _ = self.runtime.block_on(emulator.shutdown());
        }
    }
}

/// Runs grattr in `repo` with the emulator's key, and asserts the key never shows.
#[must_use = "a run checks its output only through its assertions"]
#[track_caller]
pub fn grattr(repo: &super::Repo, args: &[&str]) -> super::Run {
    let run = repo.run_with_env(args, &[("GRATTR_SECRET_KEY", KEY)]);
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the secret leaked");
    run
}

/// A group id that is known to be valid.
pub fn id(text: &str) -> GroupId {
    GroupId::parse(text).unwrap()
}

pub fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn groups_yaml(groups: &[(&str, &[(&str, &str)])]) -> String {
    let mut text = String::from("groups:\n");
    for (id, pairs) in groups {
        text += &format!("  - id: {}\n    attributes:", serde_json::Value::from(*id));
        if pairs.is_empty() {
            text += " {}\n";
            continue;
        }
        text.push('\n');
        for (key, value) in *pairs {
            text += &format!("      {key}: {}\n", serde_json::Value::from(*value));
        }
    }
    text
}

/// A group file declaring `count` groups `{prefix}-0000`…, each with the attribute `v: {prefix}-NNNN`.
pub fn many_groups(prefix: &str, count: usize) -> String {
    let mut text = String::from("groups:\n");
    for i in 0..count {
        text += &format!("  - id: {prefix}-{i:04}\n    attributes:\n      v: {prefix}-{i:04}\n");
    }
    text
}

/// Starts `grattr apply --yes` in `root` without waiting for it, its output captured.
pub fn spawn_apply(root: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_grattr"))
        .current_dir(root)
        .args(["apply", "--yes"])
        .env("GRATTR_SECRET_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}
