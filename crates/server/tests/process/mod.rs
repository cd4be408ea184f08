//! The real `switchboard` binary as a child process on loopback: start it, read its log, signal
//! it, wait for its exit. Shared by the config, TLS and drain tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Loopback, any free ports, one shard: add these unless a test is about them.
pub const LOOPBACK: &[&str] = &["--http", "127.0.0.1:0", "--udp-ports", "0", "--shards", "1"];

/// Long enough for a slow CI machine; every wait returns as soon as its condition holds.
pub const STARTUP: Duration = Duration::from_secs(15);

/// The binary with no SWITCHBOARD_* variables from the test's own environment.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(name);
        }
    }
    command.args(args);
    command
}

/// Run to completion (for `--print-config` and startup errors); bounded by the caller's timeout
/// in practice because these exit before binding anything.
pub fn output(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(args);
    command.envs(env.iter().copied());
    command.stdin(Stdio::null());
    command.output().expect("switchboard runs")
}

/// A running server.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The signalling URL from the ready line (`ws://…/v1/ws` or `wss://…/v1/ws`).
    pub url: String,
    pub http: SocketAddr,
    /// Every stdout line read so far.
    pub log: Vec<String>,
}

impl Server {
    /// Start with `args` and wait for the ready line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// Start with `args` and extra environment variables, and wait for the ready line.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("switchboard starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            url: String::new(),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: Vec::new(),
        };
        let ready = server.wait_line("switchboard ready: ", STARTUP);
        let at = ready.find("ready: ").expect("ready line") + "ready: ".len();
        let url = ready[at..]
            .split_whitespace()
            .next()
            .expect("the ready line names the URL");
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("URL has a host");
        server.http = host.parse().expect("the URL's host is an address");
        server.url = url.to_owned();
        server
    }

    /// Wait for a stdout line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {within:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, if the process exits within `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` over plain HTTP/1.1; the status code.
pub async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTP answers in time")
        .expect("HTTP exchange");
    status_code(&response)
}

/// The status code of a raw HTTP/1.1 response.
pub fn status_code(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// A fresh directory for one test's files (removed when dropped).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("switchboard-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
