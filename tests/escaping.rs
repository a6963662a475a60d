//! Text grattr does not control stays inert: hostile live values, keys and file
//! names through every output kind (terminal, Markdown, logs, HTTP), machine output
//! kept byte-exact, non-UTF-8 file names refused, and usage errors exiting 1.

// Helpers of the Unix-only tests below are unused elsewhere.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]
mod support;

use grattr::model::{AttributeSet, GroupId};
// Unix only: the terminal tests run grattr on a pseudo-terminal (openpty), and a file
// name that is not UTF-8 is a byte string only on Unix (Windows names are UTF-16).
#[cfg(unix)]
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
#[cfg(unix)]
use std::os::fd::{FromRawFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Repo;
use support::emulator::{KEY, Server, attrs, groups_yaml};

/// Characters that must never reach a terminal, a log line or a comment raw: C0 and
/// C1 controls, DEL, the line and paragraph separators, and bidirectional controls.
fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The first hostile character of `text` that is not in `allowed`, with its position.
fn first_hostile(text: &str, allowed: &[char]) -> Option<(usize, char)> {
    text.char_indices().find(|(_, c)| is_hostile(*c) && !allowed.contains(c))
}

/// Values a group member can set from a client app: single-character CSI and OSC,
/// NEL, DEL, ESC sequences, line separators and bidi overrides.
fn hostile_values() -> AttributeSet {
    attrs(&[
        ("csi", "\u{9b}31mred"),
        ("osc", "\u{9d}0;pwned\u{7}"),
        ("nel", "a\u{85}b"),
        ("del", "x\u{7f}y"),
        ("esc", "\u{1b}[2J\u{1b}]0;title\u{7}"),
        ("line_sep", "one\u{2028}two\u{2029}three"),
        ("bidi", "abc\u{202e}fed\u{202c} \u{2066}isolate\u{2069}"),
        ("key\u{202e}spoof", "v"),
        ("c1\u{85}key", "w"),
    ])
}

fn id(text: &str) -> GroupId {
    GroupId::parse(text).unwrap()
}

/// An emulator with `room` applied by grattr as `k: 1`, then edited by a member's app.
fn hostile_world() -> (Server, Repo) {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("k", "1")])]));
    repo.run_with_env(&["apply", "--yes"], &[("GRATTR_SECRET_KEY", KEY)])
        .code(0)
        .stdout_contains("Apply complete: 1 applied, 0 failed");
    let client = server.client();
    server.block_on(async { client.modify_group_attr(&id("room"), &hostile_values()).await.unwrap() });
    (server, repo)
}

/// Runs grattr in `root` with stdout on a pseudo-terminal (so the styled path runs),
/// and returns its exit code and what it wrote there.
#[cfg(unix)]
fn run_on_pty(root: &std::path::Path, args: &[&str]) -> (i32, Vec<u8>) {
    run_on_a_pty(root, args, false)
}

#[cfg(unix)]
/// As [`run_on_pty`], with stderr on the pseudo-terminal too when `stderr_too`.
fn run_on_a_pty(root: &std::path::Path, args: &[&str], stderr_too: bool) -> (i32, Vec<u8>) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the given integers; the null
    // pointers ask for no name, default terminal settings and no window size.
    let opened = unsafe {
        libc::openpty(&raw mut master, &raw mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(opened, 0, "openpty failed");
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grattr"));
        command
            .current_dir(root)
            .args(args)
            .env("GRATTR_SECRET_KEY", KEY)
            .env("TERM", "xterm-256color")
            .env("CLICOLOR_FORCE", "1")
            .env_remove("NO_COLOR")
            .env_remove("GRATTR_ENV")
            .env_remove("GRATTR_CONFIG")
            .stdin(Stdio::null())
            .stderr(if stderr_too { Stdio::from(slave.try_clone().unwrap()) } else { Stdio::piped() })
            .stdout(Stdio::from(slave));
        command.spawn().unwrap()
        // The command, and with it this process's copy of the slave, is dropped here,
        // so reading the master ends when the child closes its side.
    };
    let mut output = Vec::new();
    let mut master = std::fs::File::from(master);
    let mut buffer = [0u8; 4096];
    loop {
        match master.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => output.extend_from_slice(&buffer[..n]),
            // Linux answers EIO once every slave descriptor is closed.
            Err(_) => break,
        }
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), output)
}

/// `text` without the SGR sequences grattr's own styles are made of.
fn without_styles(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        out += &rest[..at];
        let after = &rest[at + 2..];
        let end = after.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(after.len());
        if after[end..].starts_with('m') {
            rest = &after[end + 1..];
        } else {
            // Not a style: keep the ESC so that the check below finds it.
            out += "\u{1b}[";
            rest = after;
        }
    }
    out + rest
}

#[cfg(unix)]
#[test]
fn drift_text_on_a_terminal_shows_hostile_live_values_as_escapes() {
    let (_server, repo) = hostile_world();
    let (code, output) = run_on_pty(repo.path(), &["drift"]);
    let text = String::from_utf8(output).unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\u{1b}["), "the styled path ran: {text:?}");
    let plain = without_styles(&text);
    // The terminal turns each newline into CR LF.
    assert_eq!(first_hostile(&plain, &['\n', '\r']), None, "a raw control reached the terminal: {plain:?}");
    for shown in [
        r#""\u009b31mred""#,
        r#""\u009d0;pwned\u0007""#,
        r#""a\u0085b""#,
        r#""x\u007fy""#,
        r#""\u001b[2J\u001b]0;title\u0007""#,
        r#""one\u2028two\u2029three""#,
        r#""abc\u202efed\u202c \u2066isolate\u2069""#,
        r#""key\u202espoof""#,
        r#""c1\u0085key""#,
    ] {
        assert!(plain.contains(shown), "{shown} not shown in:\n{plain}");
    }
}

#[cfg(unix)]
#[test]
fn validate_snippets_on_a_terminal_show_hostile_lines_inert() {
    // C1 and bidi controls pass the YAML parser in a comment; an ESC is refused
    // there, and that diagnostic quotes its line too. The file name is hostile too.
    let repo = Repo::new()
        .file("groups/a.yaml", "groups:\n  - id: lobby # first \u{202e}\u{2066} x\n    attributes: {k: v}\n")
        .file("groups/b\u{1b}[2J\u{202e}.yaml", "groups:\n  - id: lobby # again \u{202e}x\u{85}y\u{2028}z\n")
        .file("groups/c.yaml", "groups:\n  - id: other # \u{1b}]0;title\u{7}\u{9b}31m\n");
    let (code, output) = run_on_a_pty(repo.path(), &["validate"], true);
    let text = String::from_utf8(output).unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("\u{1b}["), "the styled path ran: {text:?}");
    let plain = without_styles(&text);
    // The terminal turns each newline into CR LF.
    assert_eq!(first_hostile(&plain, &['\n', '\r']), None, "a raw control reached the terminal: {plain:?}");
    let plain = plain.replace("\r\n", "\n");
    for shown in [
        " --> groups/b\\u001b[2J\\u202e.yaml:2:9\n",
        "2 |   - id: lobby # again \u{fffd}x\u{fffd}y\u{fffd}z\n  |         ^\n",
        " ::: groups/a.yaml:2:9\n",
        "2 |   - id: lobby # first \u{fffd}\u{fffd} x\n  |         - first declared here\n",
        "2 |   - id: other # \u{241b}",
    ] {
        assert!(plain.contains(shown), "{shown:?} not shown in:\n{plain}");
    }
}

#[test]
fn drift_markdown_shows_hostile_live_values_as_escapes() {
    let (_server, repo) = hostile_world();
    let stdout =
        repo.run_with_env(&["drift", "--format", "markdown"], &[("GRATTR_SECRET_KEY", KEY)]).code(0).into_stdout();
    assert_eq!(first_hostile(&stdout, &['\n']), None, "{stdout:?}");
    assert!(stdout.contains(r#"+ "key\u202espoof" = "v" (added live)"#), "{stdout}");
    assert!(stdout.contains(r#"+ del = "x\u007fy" (added live)"#), "{stdout}");
}

#[test]
fn drift_json_keeps_hostile_live_values_byte_exact() {
    let (_server, repo) = hostile_world();
    let mut command = assert_cmd::Command::cargo_bin("grattr").unwrap();
    let output = command
        .current_dir(repo.path())
        .args(["drift", "--format", "json"])
        .env("GRATTR_SECRET_KEY", KEY)
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // serde_json writes DEL and the non-ASCII controls raw: they must all arrive.
    assert!(output.stdout.contains(&0x7f), "DEL was dropped from the JSON");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let live: AttributeSet = serde_json::from_value(json["groups"][0]["live"].clone()).unwrap();
    let mut expected = hostile_values();
    expected.insert("k".into(), "1".into());
    assert_eq!(live, expected);
}

/// A file name from a pull request that tries a heading, a mention and HTML.
const HOSTILE_NAME: &str = "a\n# heading @everyone <img src=x onerror=alert(1)>\u{202e}.yaml";

#[test]
fn markdown_plan_keeps_hostile_file_names_inert() {
    let repo = Repo::new().file(&format!("groups/{HOSTILE_NAME}"), &groups_yaml(&[("room", &[("k", "v")])])).file(
        "grattr.yaml",
        &format!("{}environments:\n  \"prod\\n# env @everyone\":\n    sdkappid: 1400000000\n", support::CONFIG),
    );
    let env = ["--env", "prod\n# env @everyone"];
    let markdown = repo.run(&[&["plan", "--format", "markdown"][..], &env].concat()).code(0).into_stdout();
    assert_eq!(first_hostile(&markdown, &['\n']), None, "{markdown:?}");
    assert!(!markdown.contains("<img"), "{markdown}");
    for line in markdown.lines() {
        assert!(!line.starts_with("# "), "a heading was formed: {line:?}\n{markdown}");
    }
    // Every mention lies inside code, where GitHub does not notify anyone.
    for (at, _) in markdown.match_indices("@everyone") {
        let before = &markdown[..at];
        let inside_html_code = before.matches("<code>").count() > before.matches("</code>").count();
        let inside_code_span = before.rsplit('\n').next().unwrap_or("").matches('`').count() % 2 == 1;
        assert!(inside_html_code || inside_code_span, "a mention outside code at {at}:\n{markdown}");
    }
    assert!(markdown.contains(r"a\n# heading @everyone &lt;img src=x onerror=alert(1)&gt;\u202e.yaml:2"), "{markdown}");
    // The text rendering shows the name escaped too.
    let text = repo.run(&[&["plan"][..], &env].concat()).code(0).into_stdout();
    assert_eq!(first_hostile(&text, &['\n']), None, "{text:?}");
    assert!(text.contains(r"(groups/a\n# heading @everyone <img src=x onerror=alert(1)>\u202e.yaml:2)"), "{text}");
}

#[test]
fn watch_logs_and_readyz_keep_hostile_file_names_on_one_line() {
    let server = Server::start(|_| {});
    let repo =
        server.repo().file(&format!("groups/{HOSTILE_NAME}"), "groups:\n  - id: room\n    attributes:\n      k: ~\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_grattr"))
        .current_dir(repo.path())
        .args(["watch", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .env("GRATTR_SECRET_KEY", KEY)
        .env("GRATTR_LOG", "warn,grattr=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let wait_for = |text: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}:\n{}", lines.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let serving = wait_for("serving /healthz");
    let port = serving.rsplit(':').next().unwrap().trim().to_string();
    let invalid = wait_for("invalid desired state");
    assert!(invalid.contains(r"a\n# heading @everyone <img src=x onerror=alert(1)>\u202e.yaml:4:"), "{invalid}");
    let readyz = server.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            grattr::api::client::install_tls_provider();
            let answer = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            if status == 503 && body.contains("problem") {
                return body;
            }
            assert!(Instant::now() < deadline, "/readyz never said why: {status} {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    for line in lines.lock().unwrap().iter() {
        assert!(!line.starts_with("# heading"), "a log event was split:\n{}", lines.lock().unwrap().join("\n"));
        assert_eq!(first_hostile(line, &[]), None, "{line:?}");
    }
    assert!(readyz.ends_with('\n') && readyz.matches('\n').count() == 1, "one line: {readyz:?}");
    assert_eq!(first_hostile(&readyz, &['\n']), None, "{readyz:?}");
    assert!(readyz.contains(r"a\n# heading @everyone <img src=x onerror=alert(1)>\u202e.yaml:4:"), "{readyz}");
}

/// A repository with a group file whose name is not UTF-8.
#[cfg(unix)]
fn repo_with_non_utf8_name() -> Repo {
    let repo = Repo::new().file("groups/good.yaml", &groups_yaml(&[("good", &[("k", "v")])]));
    let name = OsStr::from_bytes(b"bad-\xff\xfe.yaml");
    std::fs::write(repo.join("groups").join(name), groups_yaml(&[("room", &[("k", "v")])])).unwrap();
    repo
}

#[cfg(unix)]
#[test]
fn non_utf8_file_names_are_refused_never_printed_empty() {
    let repo = repo_with_non_utf8_name();
    for args in [&["plan", "--format", "json"][..], &["drift", "--format", "json"], &["plan"], &["validate"]] {
        let (stdout, stderr) = repo.run_with_env(args, &[("GRATTR_SECRET_KEY", KEY)]).code(1).into_streams();
        assert!(stdout.trim().is_empty() || args == ["validate"], "{args:?} printed: {stdout:?}");
        assert!(
            stderr.contains("groups/bad-\u{fffd}\u{fffd}.yaml") && stderr.contains("file names must be UTF-8"),
            "{args:?}: {stderr}"
        );
    }
    let stderr = repo.run(&["plan", "--out", "saved.json"]).code(1).into_stderr();
    assert!(!stderr.contains("Saved"), "{stderr}");
    assert!(!repo.join("saved.json").exists(), "a plan was saved");
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let repo = Repo::new();
    repo.run(&["plan", "--detailed-exitcode", "--formt", "markdown"]).code(1).stderr_contains("--formt");
    repo.run(&["plan", "--format", "xml"]).code(1).stderr_contains("xml");
    repo.run(&["apply", "--concurrency", "0"]).code(1).stderr(
        "error: invalid value '0' for '--concurrency <CONCURRENCY>': 0 is not in 1..=1024\n\n\
         For more information, try '--help'.\n",
    );
    repo.run(&[] as &[&str]).code(1).stderr_contains("Usage: grattr [OPTIONS] <COMMAND>");
    repo.run(&["--help"]).code(0).stdout_contains("Usage");
    repo.run(&["plan", "--help"]).code(0).stdout_contains("--detailed-exitcode");
    repo.run(&["--version"]).code(0).stdout_contains("grattr");
}

/// Characters that show as nothing (or as another character's part): zero-width
/// space and joiners, word joiner, BOM, soft hyphen, tag characters, variation
/// selectors, Hangul fillers. A key `ad\u200bmin` would read as `admin`.
const INVISIBLE: [(&str, &str, &str); 8] = [
    ("zwsp", "pri\u{200b}ce", r"pri\u200bce"),
    ("wj", "a\u{2060}b", r"a\u2060b"),
    ("bom", "\u{feff}x", r"\ufeffx"),
    ("shy", "co\u{ad}op", r"co\u00adop"),
    ("tags", "flag\u{e0067}\u{e0062}\u{e007f}", r"flag\udb40\udc67\udb40\udc62\udb40\udc7f"),
    ("vs", "a\u{fe0f}", r"a\ufe0f"),
    ("filler", "\u{3164}", r"\u3164"),
    ("ad\u{200b}min", "1", r"ad\u200bmin"),
];

#[test]
fn invisible_characters_in_keys_and_values_are_shown_as_escapes() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("k", "1")])]));
    repo.run_with_env(&["apply", "--yes"], &[("GRATTR_SECRET_KEY", KEY)]).code(0).ignore_stdout();
    let invisible: AttributeSet = INVISIBLE.iter().map(|(k, v, _)| (*k, *v)).collect();
    let client = server.client();
    server.block_on(async { client.modify_group_attr(&id("room"), &invisible).await.unwrap() });
    let is_invisible = |c: char| INVISIBLE.iter().any(|(k, v, _)| k.contains(c) || v.contains(c)) && !c.is_ascii();

    for format in ["text", "markdown"] {
        let stdout =
            repo.run_with_env(&["drift", "--format", format], &[("GRATTR_SECRET_KEY", KEY)]).code(0).into_stdout();
        assert_eq!(
            stdout.chars().find(|c| is_invisible(*c)),
            None,
            "{format}: an invisible character is raw:\n{stdout}"
        );
        for (_, _, shown) in INVISIBLE {
            assert!(stdout.contains(shown), "{format}: {shown} not shown in:\n{stdout}");
        }
    }
    // The same from the desired state: a plan shows the keys and values of the YAML so.
    let yaml = groups_yaml(&[("room", &INVISIBLE.iter().map(|(k, v, _)| (*k, *v)).collect::<Vec<_>>())]);
    let repo = repo.file("groups/a.yaml", &yaml);
    for format in ["text", "markdown"] {
        let stdout = repo.run(&["plan", "--format", format]).code(0).into_stdout();
        assert_eq!(stdout.chars().find(|c| is_invisible(*c)), None, "plan {format}: raw:\n{stdout}");
        assert!(stdout.contains(r"ad\u200bmin") && stdout.contains(r"pri\u200bce"), "plan {format}:\n{stdout}");
    }
    // JSON is never altered.
    let json = repo.run(&["plan", "--format", "json"]).code(0).json();
    let after: AttributeSet = serde_json::from_value(json["changes"][0]["after"].clone()).unwrap();
    assert_eq!(after, invisible);
}
