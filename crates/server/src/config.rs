//! Command-line flags and environment variables. Every setting has a default that works on
//! localhost, so `switchboard` with no arguments is a working server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use switchboard_runtime::{parse_port_list, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard WebRTC SFU media server"
)]
pub struct Config {
    /// Address of the HTTP/WebSocket control plane.
    #[arg(long, env = "SWITCHBOARD_HTTP", default_value = "127.0.0.1:7880")]
    pub http: SocketAddr,

    /// UDP ports for media, as a range and/or list ("50000-50100", "50000,50002"). Each shard
    /// takes one port; the first free ones are used.
    #[arg(long, env = "SWITCHBOARD_UDP_PORTS", default_value = "50000-50100")]
    pub udp_ports: String,

    /// Address the media sockets bind to.
    #[arg(long, env = "SWITCHBOARD_UDP_BIND", default_value = "127.0.0.1")]
    pub udp_bind: IpAddr,

    /// Address advertised to clients in ICE candidates, when the server sits behind a 1:1 NAT
    /// (cloud VM, container). Defaults to --udp-bind; required when binding 0.0.0.0 or ::.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Number of media shards (threads, one UDP port each). 0 = one per CPU core.
    #[arg(long, env = "SWITCHBOARD_SHARDS", default_value_t = 0)]
    pub shards: usize,

    /// Threads for the HTTP/WebSocket control plane.
    #[arg(long, env = "SWITCHBOARD_CONTROL_THREADS", default_value_t = 2)]
    pub control_threads: usize,

    /// Minimum time between two keyframe requests sent to one publisher's track (ms).
    #[arg(long, env = "SWITCHBOARD_KEYFRAME_INTERVAL_MS", default_value_t = 300)]
    pub keyframe_interval_ms: u64,

    /// Remove a participant whose media has not connected this long after joining (s).
    #[arg(long, env = "SWITCHBOARD_CONNECT_TIMEOUT_S", default_value_t = 30)]
    pub connect_timeout_s: u64,

    /// Remove a participant whose ICE stays disconnected this long (s).
    #[arg(long, env = "SWITCHBOARD_DISCONNECT_GRACE_S", default_value_t = 10)]
    pub disconnect_grace_s: u64,

    /// Log filter (tracing EnvFilter syntax), e.g. "info", "debug,str0m=info".
    #[arg(
        long,
        env = "SWITCHBOARD_LOG",
        default_value = "info,str0m=warn,dimpl=warn"
    )]
    pub log: String,
}

impl Config {
    pub fn runtime(&self) -> Result<RuntimeConfig, String> {
        let ports = parse_port_list(&self.udp_ports).map_err(|e| format!("--udp-ports: {e}"))?;
        if self.udp_bind.is_unspecified() && self.public_ip.is_none() {
            return Err(format!(
                "--udp-bind {} needs --public-ip: clients must be told a reachable address",
                self.udp_bind
            ));
        }
        if let Some(ip) = self.public_ip {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "--public-ip {ip} is not an address clients can reach"
                ));
            }
        }
        let shards = if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.shards
        };
        let mut config = RuntimeConfig::localhost(shards);
        config.bind_ip = self.udp_bind;
        config.ports = ports;
        config.public_ip = self.public_ip;
        config.keyframe_interval = Duration::from_millis(self.keyframe_interval_ms.max(1));
        config.connect_timeout = Duration::from_secs(self.connect_timeout_s.max(1));
        config.disconnect_grace = Duration::from_secs(self.disconnect_grace_s.max(1));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_localhost() {
        let config = Config::parse_from(["switchboard"]);
        let rt = config.runtime().expect("default config is valid");
        assert_eq!(rt.advertised_ip(), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(config.http.port(), 7880);
        assert!(rt.shards >= 1);
    }

    #[test]
    fn unspecified_bind_needs_public_ip() {
        let config = Config::parse_from(["switchboard", "--udp-bind", "0.0.0.0"]);
        assert!(config.runtime().is_err());
        let config = Config::parse_from([
            "switchboard",
            "--udp-bind",
            "0.0.0.0",
            "--public-ip",
            "203.0.113.7",
        ]);
        assert_eq!(
            config.runtime().expect("valid").advertised_ip(),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn bad_port_list_is_reported() {
        let config = Config::parse_from(["switchboard", "--udp-ports", "90-10"]);
        assert!(config
            .runtime()
            .expect_err("reversed range")
            .contains("--udp-ports"));
    }
}
