//! `--spawn-server`: a `switchboard` process on free loopback ports, with the admission limits
//! for real users turned off, stopped when the run ends; and a look at what it logged.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_loadtest::procstat;

/// A server process this tool started; stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct SpawnedServer {
    child: Child,
    pub(crate) url: String,
    pub(crate) log: PathBuf,
}

impl SpawnedServer {
    pub(crate) fn start(
        path: &Path,
        shards: Option<usize>,
        cpus: Option<&str>,
        extra: &[String],
    ) -> Result<Self, String> {
        let http = free_tcp_port()?;
        let ports = shards.unwrap_or_else(procstat::cpu_count).max(1);
        let udp = free_udp_range(ports)?;
        let log = std::env::temp_dir().join(format!(
            "switchboard-loadtest-server-{}.log",
            std::process::id()
        ));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(list).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--udp-ports")
            .arg(format!("{}-{}", udp, udp + ports as u16 - 1))
            .arg("--udp-bind")
            .arg("127.0.0.1")
            // Every load-test client connects from 127.0.0.1: the per-address join rate and the
            // room size limits meant for real users would refuse the scenarios. Extra
            // --server-arg flags come after these and win.
            .arg("--max-participants-per-room")
            .arg("0")
            .arg("--joins-per-ip-per-minute")
            .arg("0");
        if let Some(n) = shards {
            cmd.arg("--shards").arg(n.to_string());
        }
        // Quiet unless a --server-arg sets a log filter of its own (the flag may be given once).
        if !extra
            .iter()
            .any(|a| a == "--log" || a.starts_with("--log="))
        {
            cmd.arg("--log").arg("warn");
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let mut server = SpawnedServer {
            child,
            url: format!("ws://127.0.0.1:{http}/v1/ws"),
            log,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the server exited at start ({status}); see {}",
                    server.log.display()
                ));
            }
            if is_ready(addr) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the server was not ready on {addr} within 15 s; see {}",
                    server.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM lets it tell its participants and close cleanly.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /readyz` answers 200. Accepting a TCP connection is not enough: the server listens
/// before it starts its media shards, and a soak's "before" reading taken then misses the shards'
/// threads and sockets.
fn is_ready(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.set_write_timeout(Some(Duration::from_millis(500)))?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    probe().unwrap_or(false)
}

fn free_tcp_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

/// `n` consecutive free UDP ports on 127.0.0.1 (checked by binding them; the race with other
/// programs is accepted: the server takes the first free ones of the range anyway).
fn free_udp_range(n: usize) -> Result<u16, String> {
    for _ in 0..50 {
        let base = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free UDP port: {e}"))?;
        if usize::from(base) + n > usize::from(u16::MAX) {
            continue;
        }
        let held: Result<Vec<UdpSocket>, _> = (0..n)
            .map(|i| UdpSocket::bind(("127.0.0.1", base + i as u16)))
            .collect();
        if held.is_ok() {
            return Ok(base);
        }
    }
    Err(format!("no {n} consecutive free UDP ports found"))
}

/// Point at warnings and errors the spawned server logged.
pub(crate) fn report_server_log(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    if !lines.is_empty() {
        eprintln!(
            "the server logged {} warning/error line(s) ({}); first ones:",
            lines.len(),
            path.display()
        );
        for l in lines.iter().take(5) {
            eprintln!("  {l}");
        }
    }
}
