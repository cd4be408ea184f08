//! The server's configuration: one [`Config`], filled in layers. Defaults, then the TOML file
//! named by `--config` / `SWITCHBOARD_CONFIG`, then environment variables, then flags; each layer
//! overrides the ones before it, key by key. Every setting has a default that works on
//! localhost, so `switchboard` with no arguments is a working server.
//!
//! Each setting is declared once, as a row of the table in `settings.rs`: its key, type,
//! default, `--help` text and heading. The `settings!` macro (`macros.rs`) makes from the rows
//! the structs with their defaults, the file layer (serde, unknown keys refused) and the
//! environment and flag layers (one clap argument per row, `layers.rs`). Names follow one rule:
//! the file key `udp_ports` is the flag `--udp-ports` and the variable `SWITCHBOARD_UDP_PORTS`;
//! keys in a table take its flag prefix (`auth.mode` is `--auth-mode`, `webhooks.urls` is
//! `--webhook-urls`, `limits.max_rooms` is `--max-rooms`), and a row names its flag when the
//! rule does not fit (`auth.keys` is `--api-key`). `docs/operations.md` has the full table.
//!
//! # Adding a setting
//!
//! 1. Add its row to its table in `settings.rs`, where it should appear in `--print-config`:
//!    ```text
//!    /// Signalling messages one participant may send per second; 0 = unlimited.
//!    messages_per_second: u32 = Limits::default().messages_per_second, "N" in LIMITS;
//!    ```
//!    That gives the file key `limits.messages_per_second`, `--messages-per-second`,
//!    `SWITCHBOARD_MESSAGES_PER_SECOND`, the default, and the `--help` entry. A type that
//!    `values.rs` does not know yet needs a `FlagValue` impl there (one line for a type clap
//!    parses with `FromStr`).
//! 2. Hand it on in [`Config::control`] or [`Config::runtime`] below (or read it in `main.rs`).
//!    Both destructure every setting, so the build fails until the new one is placed.
//! 3. Add its row to the table in `docs/operations.md` (`every_key_is_documented` checks).
//!
//! Checks the type cannot express (ranges, combinations) go in `validate.rs`.

mod layers;
mod macros;
mod setting;
mod settings;
#[cfg(test)]
mod tests;
mod validate;
mod values;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use switchboard_control::{
    AdmissionConfig, AuthConfig, ControlConfig, Limits, TurnConfig, WebhookConfig,
};
use switchboard_runtime::{parse_port_list, RuntimeConfig};

pub use layers::load;
pub use settings::Config;

use setting::key;
use settings::{
    AdmissionSettings, AuthSettings, CallSettings, LimitSettings, TurnSettings, WebhookSettings,
};
use values::ApiKeyEntry;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--print-config`: this TOML goes to stdout and the process exits.
    Print(String),
}

#[derive(Debug)]
pub enum LoadError {
    /// Bad flags, `--help`, `--version`: clap prints and exits.
    Cli(clap::Error),
    /// A bad file or value, as one line.
    Invalid(String),
}

impl From<String> for LoadError {
    fn from(e: String) -> Self {
        LoadError::Invalid(e)
    }
}

impl Config {
    /// The effective configuration as a TOML document that [`Config::from_toml`] reads back.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!(
            "# switchboard effective configuration (defaults < file < environment < flags)\n\
             # keys and defaults: docs/operations.md\n\n{body}"
        )
    }

    /// The control plane's settings: `[auth]`, `[admission]`, `[webhooks]`, `[turn]`,
    /// `[limits]`.
    pub fn control(&self) -> ControlConfig {
        // Exhaustive on both sides on purpose: a new row, or a new field in
        // `switchboard_control`, fails to compile here until it is mapped.
        let AuthSettings {
            mode,
            keys,
            max_ttl_s,
            clock_skew_s,
        } = &self.auth;
        let WebhookSettings {
            urls,
            secret,
            max_attempts,
            queue,
            timeout_ms,
        } = &self.webhooks;
        let LimitSettings {
            max_participants_per_room,
            max_rooms,
            max_message_bytes,
            joins_per_ip_per_minute,
            messages_per_second,
            message_bytes_per_second,
            max_connections,
            max_connections_per_ip,
            join_timeout_s,
            send_timeout_s,
            max_tracks_per_participant,
            max_mlines_per_session,
            max_candidates_per_session,
            resume_grace_s,
        } = &self.limits;
        let TurnSettings {
            urls: turn_urls,
            secret: turn_secret,
            ttl_s,
        } = &self.turn;
        let CallSettings {
            ring_timeout_s,
            reconnect_grace_s,
            ring_when_busy,
            max_callees,
            max_calls_per_peer,
            initiate_per_minute,
            mesh_max_members,
        } = &self.calls;
        ControlConfig {
            auth: AuthConfig {
                mode: *mode,
                keys: keys.iter().map(ApiKeyEntry::to_api_key).collect(),
                max_ttl_s: *max_ttl_s,
                clock_skew_s: *clock_skew_s,
            },
            admission: self.admission.as_ref().map(
                |AdmissionSettings {
                     url,
                     timeout_ms,
                     every_signal,
                 }| AdmissionConfig {
                    url: url.clone(),
                    timeout_ms: *timeout_ms,
                    every_signal: *every_signal,
                },
            ),
            webhooks: WebhookConfig {
                urls: urls.clone(),
                secret: secret.clone(),
                max_attempts: *max_attempts,
                queue: *queue,
                timeout_ms: *timeout_ms,
            },
            limits: Limits {
                max_participants_per_room: *max_participants_per_room,
                max_rooms: *max_rooms,
                max_message_bytes: *max_message_bytes,
                joins_per_ip_per_minute: *joins_per_ip_per_minute,
                messages_per_second: *messages_per_second,
                message_bytes_per_second: *message_bytes_per_second,
                max_connections: *max_connections,
                max_connections_per_ip: *max_connections_per_ip,
                join_timeout_s: *join_timeout_s,
                send_timeout_s: *send_timeout_s,
                max_tracks_per_participant: *max_tracks_per_participant,
                max_mlines_per_session: *max_mlines_per_session,
                max_candidates_per_session: *max_candidates_per_session,
                resume_grace_s: *resume_grace_s,
            },
            turn: TurnConfig {
                urls: turn_urls.clone(),
                secret: turn_secret.clone(),
                ttl_s: *ttl_s,
            },
            calls: switchboard_control::CallsConfig {
                ring_timeout_s: *ring_timeout_s,
                reconnect_grace_s: *reconnect_grace_s,
                ring_when_busy: *ring_when_busy,
                max_callees: *max_callees,
                max_calls_per_peer: *max_calls_per_peer,
                initiate_per_minute: *initiate_per_minute,
                mesh_max_members: *mesh_max_members,
            },
        }
    }

    /// The media runtime's settings.
    pub fn runtime(&self) -> Result<RuntimeConfig, String> {
        // Exhaustive on purpose: a new top-level setting fails to compile here until it is
        // either handed to the runtime or marked as someone else's.
        let Config {
            // main.rs: the listener, TLS, the drain, the control runtime, logging.
            http: _,
            tls_cert: _,
            tls_key: _,
            drain_timeout_s: _,
            control_threads: _,
            log: _,
            udp_ports,
            udp_bind,
            public_ip,
            udp_bind6,
            public_ip6,
            advertise_ips,
            tcp_port,
            shards,
            keyframe_interval_ms,
            connect_timeout_s,
            disconnect_grace_s,
            bandwidth_estimation,
            max_subscriber_kbps,
            dynacast,
            udp_gso,
            // Config::control (the room size is also the shards', below).
            auth: _,
            admission: _,
            webhooks: _,
            turn: _,
            calls: _,
            limits,
        } = self;
        let ports = parse_port_list(udp_ports)
            .map_err(|e| format!("{} {udp_ports:?}: {e}", key("udp_ports")))?;
        if udp_bind.is_unspecified() && public_ip.is_none() {
            return Err(format!(
                "{} {udp_bind} needs {}: clients must be told a reachable address",
                key("udp_bind"),
                key("public_ip")
            ));
        }
        if let Some(ip) = public_ip {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "{} {ip} is not an address clients can reach",
                    key("public_ip")
                ));
            }
        }
        if let Some(ip) = public_ip {
            if ip.is_ipv4() != udp_bind.is_ipv4() {
                return Err(format!(
                    "{} {ip} and {} {udp_bind} must be of one address family",
                    key("public_ip"),
                    key("udp_bind")
                ));
            }
        }
        if let Some(ip6) = udp_bind6 {
            if ip6.is_ipv4() || udp_bind.is_ipv6() {
                return Err(format!(
                    "{} {ip6} must be IPv6 and {} {udp_bind} IPv4 (one socket per family)",
                    key("udp_bind6"),
                    key("udp_bind")
                ));
            }
            if ip6.is_unspecified() && public_ip6.is_none() {
                return Err(format!(
                    "{} {ip6} needs {}: clients must be told a reachable address",
                    key("udp_bind6"),
                    key("public_ip6")
                ));
            }
        }
        if let Some(ip) = public_ip6 {
            if udp_bind6.is_none() || ip.is_ipv4() || ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "{} {ip} needs {} and must be a reachable IPv6 address",
                    key("public_ip6"),
                    key("udp_bind6")
                ));
            }
        }
        let mut extra_ips = Vec::new();
        for text in advertise_ips {
            let ip: IpAddr = text
                .trim()
                .parse()
                .map_err(|_| format!("{} {text:?} is not an IP address", key("advertise_ips")))?;
            let family_bound = ip.is_ipv4() == udp_bind.is_ipv4() || udp_bind6.is_some();
            if ip.is_unspecified() || ip.is_multicast() || !family_bound {
                return Err(format!(
                    "{} {ip}: not an address clients can reach on a bound family",
                    key("advertise_ips")
                ));
            }
            extra_ips.push(ip);
        }
        let shards = if *shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            *shards
        };
        let mut config = RuntimeConfig::localhost(shards);
        config.bind_ip = *udp_bind;
        config.ports = ports;
        config.public_ip = *public_ip;
        config.bind_ip6 = *udp_bind6;
        config.public_ip6 = *public_ip6;
        config.extra_ips = extra_ips;
        config.tcp_port = *tcp_port;
        config.keyframe_interval = Duration::from_millis((*keyframe_interval_ms).max(1));
        config.connect_timeout = Duration::from_secs((*connect_timeout_s).max(1));
        config.disconnect_grace = Duration::from_secs((*disconnect_grace_s).max(1));
        config.bandwidth_estimation = *bandwidth_estimation;
        config.max_subscriber_bitrate =
            (*max_subscriber_kbps > 0).then(|| max_subscriber_kbps * 1000);
        config.dynacast = *dynacast;
        config.udp_gso = *udp_gso;
        // The shards enforce the room size (they own the rooms); the control plane reads the
        // same limit from `Config::control`.
        config.max_participants_per_room = limits.max_participants_per_room;
        // The same for the per-session bounds the shards enforce.
        config.max_tracks_per_participant = limits.max_tracks_per_participant;
        config.max_mlines_per_session = limits.max_mlines_per_session;
        config.max_candidates_per_session = limits.max_candidates_per_session;
        Ok(config)
    }

    /// Certificate and key paths when HTTPS is configured.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_s)
    }
}
