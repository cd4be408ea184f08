//! The settings table: every setting, once. See `mod.rs` for how to add one and `macros.rs` for
//! what a row turns into.
//!
//! A row is `key: Type = default, "VALUE_NAME" in HEADING[, option()]...;` under its `--help`
//! text. The file key is the row's key (inside its table); the flag is the table's flag prefix
//! and the key with `-` for `_` unless `flag("...")` says otherwise; the variable is
//! `SWITCHBOARD_` and the flag in upper case with `_`. The rows' order is `--print-config`'s, and
//! `--help`'s within each heading.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use switchboard_control::{AuthConfig, AuthMode, CallsConfig, Limits, TurnConfig, WebhookConfig};

use super::macros::settings;
use super::values::ApiKeyEntry;

// `--help` headings.
const HTTP: &str = "HTTP, TLS, logging and shutdown";
const MEDIA: &str = "Media";
const AUTH: &str = "Authentication";
const HOOKS: &str = "Admission and webhooks";
const LIMITS: &str = "Limits";
const TURN: &str = "TURN";
const CALLS: &str = "Calls and mesh rooms";

settings! {
    /// The effective configuration of one `switchboard` process. `--print-config` prints it as
    /// TOML (which `--config` reads back).
    pub struct Config {
        /// HTTP/WebSocket listen address.
        http: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7880)), "ADDR" in HTTP;
        /// PEM certificate chain: serve HTTPS/WSS instead of HTTP (needs --tls-key).
        tls_cert: Option<PathBuf> = None, "PATH" in HTTP;
        /// PEM private key for --tls-cert.
        tls_key: Option<PathBuf> = None, "PATH" in HTTP;
        /// On SIGTERM/SIGINT, seconds to wait for participants to leave before closing sessions.
        drain_timeout_s: u64 = 30, "S" in HTTP;
        /// UDP ports for media, as a range and/or list ("50000-50100", "50000,50002"). Each shard
        /// takes one port; the first free ones are used.
        udp_ports: String = "50000-50100".into(), "PORTS" in MEDIA;
        /// Address the media sockets bind to.
        udp_bind: IpAddr = IpAddr::from([127, 0, 0, 1]), "IP" in MEDIA;
        /// Address advertised to clients in ICE candidates, when the server sits behind a 1:1
        /// NAT (cloud VM, container). Defaults to --udp-bind; required when binding 0.0.0.0 or ::.
        public_ip: Option<IpAddr> = None, "IP" in MEDIA;
        /// Also bind the media sockets to this IPv6 address (dual stack: each shard then has an
        /// IPv4 and an IPv6 socket, on the same port when it is free), e.g. "::1" or "::".
        udp_bind6: Option<IpAddr> = None, "IP" in MEDIA;
        /// IPv6 address advertised for --udp-bind6 (1:1 NAT); defaults to --udp-bind6, required
        /// when that is "::".
        public_ip6: Option<IpAddr> = None, "IP" in MEDIA;
        /// More addresses advertised as host candidates besides the public/bind ones, e.g. the
        /// private address for clients on the same LAN; comma-separated; each must be of a family
        /// a media socket binds.
        advertise_ips: Vec<String> = Vec::new(), "IPS" in MEDIA;
        /// ICE-TCP port for clients whose UDP is blocked (one per node, on the media bind
        /// addresses; offered after the UDP candidates). Default: off. 0 = any free port.
        tcp_port: Option<u16> = None, "PORT" in MEDIA;
        /// Number of media shards (threads, one UDP port each). 0 = one per CPU core.
        shards: usize = 0, "N" in MEDIA;
        /// Threads for HTTP/WebSocket.
        control_threads: usize = 2, "N" in HTTP;
        /// Minimum time between two keyframe requests sent to one publisher's track (ms).
        keyframe_interval_ms: u64 = 300, "MS" in MEDIA;
        /// Remove a participant whose media has not connected this long after joining (s).
        connect_timeout_s: u64 = 30, "S" in MEDIA;
        /// Remove a participant whose ICE stays disconnected this long (s).
        disconnect_grace_s: u64 = 10, "S" in MEDIA;
        /// Estimate each subscriber's bandwidth (TWCC) and forward what its link carries (lower
        /// simulcast layers, paused video). Off: every subscriber gets what it asks for, within
        /// --max-subscriber-kbps, for ~10 % less CPU per packet.
        bandwidth_estimation: bool = true, "BOOL" in MEDIA;
        /// The most forwarded to one subscriber (kbit/s); 0 = what its link carries.
        max_subscriber_kbps: u64 = 0, "KBPS" in MEDIA;
        /// Tell publishers to stop encoding the simulcast layers nobody receives, and to start
        /// them again when somebody does (dynacast; the SDK applies it).
        dynacast: bool = true, "BOOL" in MEDIA;
        /// Send runs of same-size datagrams to one client in one system call (UDP GSO, Linux
        /// 4.18+); turned off by itself where the kernel refuses it. Off: one sendto per datagram.
        udp_gso: bool = true, "BOOL" in MEDIA;
        /// Log filter (tracing EnvFilter syntax), e.g. "info", "debug,str0m=info".
        log: String = "info,str0m=warn,dimpl=warn".into(), "FILTER" in HTTP;
    }

    /// `[auth]`: how joins and the admin API are authenticated.
    [auth] AuthSettings, flags "auth-" {
        /// "required": every join needs a credential signed with an API key. "dev": joins
        /// without one are admitted (a random key is made and printed when none is configured).
        mode: AuthMode = AuthConfig::default().mode, "MODE" in AUTH;
        /// API keys as ID:SECRET, comma-separated or repeated; replace the file's [[auth.keys]].
        keys: Vec<ApiKeyEntry> = Vec::new(), "ID:SECRET" in AUTH, flag("api-key"), hide_env();
        /// Longest credential lifetime accepted (s).
        max_ttl_s: u64 = AuthConfig::default().max_ttl_s, "S" in AUTH;
        /// Clock difference tolerated between the app server minting credentials and us (s).
        clock_skew_s: u64 = AuthConfig::default().clock_skew_s, "S" in AUTH;
    }

    /// `[admission]`: ask the application before admitting a join. Absent (no hook) until a
    /// layer sets one of its keys; then `url` is required.
    [admission] Option<AdmissionSettings>, flags "admission-" {
        /// Ask this URL before admitting each join (POST). Default: no admission hook.
        url: String = String::new(), "URL" in HOOKS;
        /// How long to wait for the admission URL's answer (ms).
        timeout_ms: u64 = 2_000, "MS" in HOOKS;
        /// Also ask the admission URL before acting on every later client message.
        every_signal: bool = false, "BOOL" in HOOKS;
    }

    /// `[webhooks]`: signed event notifications to the application.
    [webhooks] WebhookSettings, flags "webhook-" {
        /// Webhook URLs for room and participant events, comma-separated; replace the file's.
        urls: Vec<String> = Vec::new(), "URLS" in HOOKS;
        /// HMAC key for webhook signatures. Default: the first API key's secret.
        secret: String = String::new(), "SECRET" in HOOKS, hide_env();
        /// Delivery attempts per webhook event (first try included).
        max_attempts: u32 = WebhookConfig::default().max_attempts, "N" in HOOKS;
        /// Webhook events waiting for delivery; beyond it new events are dropped.
        queue: usize = WebhookConfig::default().queue, "N" in HOOKS;
        /// Timeout of one webhook delivery attempt (ms).
        timeout_ms: u64 = WebhookConfig::default().timeout_ms, "MS" in HOOKS;
    }

    /// `[turn]`: the TURN (and STUN) servers clients are handed in `joined` and `resumed`,
    /// with credentials minted per participant. The TURN server itself is separate (coturn:
    /// docs/operations.md).
    [turn] TurnSettings, flags "turn-" {
        /// TURN/STUN server URLs handed to clients, comma-separated; replace the file's. E.g.
        /// "turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp",
        /// "stun:turn.example.com:3478". Default: none, clients get no iceServers.
        urls: Vec<String> = Vec::new(), "URLS" in TURN;
        /// Secret shared with the TURN server (coturn's static-auth-secret) that TURN
        /// credentials are signed with; needed with turn: or turns: URLs.
        secret: String = String::new(), "SECRET" in TURN, hide_env();
        /// How long a minted TURN credential stays valid (s): the TURN server refuses it after.
        ttl_s: u64 = TurnConfig::default().ttl_s, "S" in TURN;
    }

    /// `[calls]`: ringing calls and mesh rooms on the peer connection (docs/protocol-peer.md).
    [calls] CallSettings, flags "call-" {
        /// A callee that does not answer within this is `missed` (s).
        ring_timeout_s: u64 = CallsConfig::default().ring_timeout_s, "S" in CALLS;
        /// A peer whose peer connection dropped stays registered, and in its calls, this long (s).
        reconnect_grace_s: u64 = CallsConfig::default().reconnect_grace_s, "S" in CALLS;
        /// Ring a peer that is in another call (call waiting) instead of answering `busy`.
        ring_when_busy: bool = CallsConfig::default().ring_when_busy, "BOOL" in CALLS;
        /// Most peers one call rings.
        max_callees: usize = CallsConfig::default().max_callees, "N" in CALLS;
        /// Most calls one peer is in or rung for at once.
        max_calls_per_peer: usize = CallsConfig::default().max_calls_per_peer, "N" in CALLS;
        /// callInitiate messages one peer may send per minute; 0 = unlimited.
        initiate_per_minute: u32 = CallsConfig::default().initiate_per_minute, "N" in CALLS;
        /// Most members of a mesh room.
        mesh_max_members: usize = CallsConfig::default().mesh_max_members, "N" in CALLS;
    }

    /// `[limits]`: what one server, room or client may use. Their flags have no prefix.
    [limits] LimitSettings, flags "" {
        /// Participants per room; 0 = unlimited.
        max_participants_per_room: usize = Limits::default().max_participants_per_room,
            "N" in LIMITS;
        /// Rooms on this server; 0 = unlimited.
        max_rooms: usize = Limits::default().max_rooms, "N" in LIMITS;
        /// Largest signalling message accepted (bytes).
        max_message_bytes: usize = Limits::default().max_message_bytes, "BYTES" in LIMITS;
        /// Joins one IP address (IPv6: one /64) may attempt per minute; 0 = unlimited.
        joins_per_ip_per_minute: u32 = Limits::default().joins_per_ip_per_minute, "N" in LIMITS;
        /// Data messages one connection may send per second; 0 = unlimited.
        messages_per_second: u32 = Limits::default().messages_per_second, "N" in LIMITS;
        /// Bytes of data messages one connection may send per second; 0 = unlimited.
        message_bytes_per_second: u64 = Limits::default().message_bytes_per_second,
            "BYTES" in LIMITS;
        /// Open signalling connections in total; 0 = unlimited.
        max_connections: usize = Limits::default().max_connections, "N" in LIMITS;
        /// Open signalling connections from one IP address (IPv6: one /64); 0 = unlimited.
        max_connections_per_ip: usize = Limits::default().max_connections_per_ip,
            "N" in LIMITS;
        /// Close a connection that has not joined a room this long after opening (s).
        join_timeout_s: u64 = Limits::default().join_timeout_s, "S" in LIMITS;
        /// Drop a client that does not take a message within this long (s).
        send_timeout_s: u64 = Limits::default().send_timeout_s, "S" in LIMITS;
        /// Tracks one participant may publish.
        max_tracks_per_participant: usize = Limits::default().max_tracks_per_participant,
            "N" in LIMITS;
        /// m-lines one session may negotiate (sent and received together).
        max_mlines_per_session: usize = Limits::default().max_mlines_per_session,
            "N" in LIMITS;
        /// Remote ICE candidates one session may send.
        max_candidates_per_session: usize = Limits::default().max_candidates_per_session,
            "N" in LIMITS;
        /// How long a session whose signalling connection dropped waits for a resume (s); 0 =
        /// no resume.
        resume_grace_s: u64 = Limits::default().resume_grace_s, "S" in LIMITS;
    }
}
