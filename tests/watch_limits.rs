//! `grattr watch` under pressure on its file descriptors: idle connections to the
//! health and metrics endpoint are closed, and a read that failed because too many
//! files were open is tried again once they are not, with no touch nor SIGHUP.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use support::emulator::{Server, attrs, groups_yaml};
use support::watch::{PATIENCE, Watch, eventually};

/// Reads from `stream` until the watcher closes it; panics if it is still open after [`PATIENCE`].
fn closed_by_the_watcher(mut stream: TcpStream) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buffer = [0; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            // An answer (408) before the close.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection is still open after {PATIENCE:?}: {e}"),
        }
    }
}

#[test]
fn idle_connections_are_closed_and_readyz_still_answers() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]));
    let args = ["--listen-max-connections", "4", "--listen-idle-timeout", "300ms"];
    let watch = Watch::start(&repo, &args);
    eventually(PATIENCE, "ready", || watch.readyz(&server).0 == 200);

    // Twenty idle connections, and one that never finishes its headers: four at a time
    // are served, the others wait to be accepted; each is closed when it has idled 300 ms.
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(watch.address()).unwrap()).collect();
    let mut slow = TcpStream::connect(watch.address()).unwrap();
    slow.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Served all the same, once a place is free.
    assert_eq!(watch.readyz(&server), (200, "ready\n".to_string()));
    for stream in idle {
        closed_by_the_watcher(stream);
    }
    closed_by_the_watcher(slow);
    assert_eq!(watch.readyz(&server).0, 200);
    assert_eq!(server.live("room"), Some(attrs(&[("v", "1")])));
}

/// Starts `grattr watch` with at most `limit` open files.
#[cfg(target_os = "linux")]
fn start_with_open_files(repo: &support::Repo, args: &[&str], limit: u64) -> Watch {
    use std::os::unix::process::CommandExt;
    Watch::start_command(repo, args, "200ms", "warn,grattr=debug", |command| {
        // SAFETY: setrlimit(2) only, in the child between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    })
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_that_failed_for_too_many_open_files_recovers_on_its_own() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]));
    // The limit is lifted far above the open-files limit, so that connections can use them all up.
    let args = ["--listen-max-connections", "1000", "--listen-idle-timeout", "1h"];
    let watch = start_with_open_files(&repo, &args, 64);
    eventually(PATIENCE, "applied", || server.live("room") == Some(attrs(&[("v", "1")])));
    eventually(PATIENCE, "ready", || watch.readyz(&server).0 == 200);

    // Connections until the watcher has no file descriptor left to accept another.
    let held: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(watch.address()).unwrap()).collect();
    watch.wait_for_log("cannot accept a connection");
    // An edit now cannot be read.
    let _repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    watch.wait_for_log("cannot read: Too many open files");
    assert_eq!(server.live("room"), Some(attrs(&[("v", "1")])));

    // The connections close: the file is read again with no event, touch or SIGHUP.
    drop(held);
    eventually(PATIENCE, "the edit applied", || server.live("room") == Some(attrs(&[("v", "2")])));
    eventually(PATIENCE, "ready again", || watch.readyz(&server).0 == 200);
    watch.wait_for_log("reading again the files a passing failure kept unread");
}
