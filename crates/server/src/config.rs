//! The server's configuration: one [`Config`], filled in layers. Defaults, then the TOML file
//! named by `--config` / `SWITCHBOARD_CONFIG`, then environment variables, then flags; each layer
//! overrides the ones before it, key by key. Every setting has a default that works on
//! localhost, so `switchboard` with no arguments is a working server.
//!
//! File keys are the flag names with `_` for `-` (`--udp-ports` is `udp_ports`); the control
//! plane's settings live in the tables `[auth]`, `[admission]`, `[webhooks]` and `[limits]`, and
//! their flags carry the table's name (`--auth-mode` is `auth.mode`, `--webhook-urls` is
//! `webhooks.urls`). `docs/operations.md` has the full table.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use switchboard_control::{
    AdmissionConfig, ApiKey, AuthConfig, AuthMode, ControlConfig, Limits, WebhookConfig,
};
use switchboard_runtime::{parse_port_list, RuntimeConfig};

/// Used when the file sets `[admission]` (or the environment the admission URL) without a
/// timeout.
pub const DEFAULT_ADMISSION_TIMEOUT_MS: u64 = 2_000;

/// The effective configuration of one `switchboard` process. `--print-config` prints it as TOML
/// (which `--config` reads back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// HTTP/WebSocket listen address. Default `127.0.0.1:7880`.
    pub http: SocketAddr,
    /// PEM certificate chain for HTTPS/WSS on `http` (with `tls_key`). Default: none (plain
    /// HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM/SIGINT, how long to wait for participants to leave by themselves before
    /// closing their sessions (s). Default 30.
    pub drain_timeout_s: u64,
    /// UDP ports for media, as a range and/or list (`50000-50100`, `50000,50002`). Each shard
    /// takes one port, the first free ones. Default `50000-50100`.
    pub udp_ports: String,
    /// Address the media sockets bind to. Default `127.0.0.1`.
    pub udp_bind: IpAddr,
    /// Address advertised in ICE candidates when the server sits behind a 1:1 NAT (cloud VM,
    /// container). Default: `udp_bind`; required when that is `0.0.0.0` or `::`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// Media shards (threads, one UDP port each); 0 = one per CPU core. Default 0.
    pub shards: usize,
    /// Threads for HTTP/WebSocket. Default 2.
    pub control_threads: usize,
    /// At most one keyframe request per published track per interval (ms). Default 300.
    pub keyframe_interval_ms: u64,
    /// Remove a participant whose media has not connected this long after joining (s).
    /// Default 30.
    pub connect_timeout_s: u64,
    /// Remove a participant whose ICE stays disconnected this long (s). Default 10.
    pub disconnect_grace_s: u64,
    /// Log filter (`tracing` EnvFilter syntax). Default `info,str0m=warn,dimpl=warn`.
    pub log: String,
    /// The control plane: `[auth]`, `[admission]`, `[webhooks]`, `[limits]` (defaults in
    /// `switchboard_control` and `docs/operations.md`).
    #[serde(flatten)]
    pub control: ControlConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 7880)),
            tls_cert: None,
            tls_key: None,
            drain_timeout_s: 30,
            udp_ports: "50000-50100".into(),
            udp_bind: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            shards: 0,
            control_threads: 2,
            keyframe_interval_ms: 300,
            connect_timeout_s: 30,
            disconnect_grace_s: 10,
            log: "info,str0m=warn,dimpl=warn".into(),
            control: ControlConfig::default(),
        }
    }
}

static DEFAULTS: LazyLock<Config> = LazyLock::new(Config::default);

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

/// Read the command line (and the environment, and the config file it names) into a validated
/// [`Config`].
pub fn load<I, T>(args: I) -> Result<Command, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // An empty variable (`SWITCHBOARD_PUBLIC_IP=` in an environment file) counts as unset, as
    // it would in a shell script, rather than as an invalid value.
    let command = Cli::command().mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty());
        if empty {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    });
    load_with(command, args)
}

/// [`load`] with the command to parse with (tests take the environment out of it).
fn load_with<I, T>(command: clap::Command, args: I) -> Result<Command, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command.try_get_matches_from(args).map_err(LoadError::Cli)?;
    let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Cli)?;
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    cli.apply(&matches, &mut config)?;
    config.validate()?;
    if cli.print_config {
        Ok(Command::Print(config.to_toml()))
    } else {
        Ok(Command::Run(Box::new(config)))
    }
}

impl Config {
    /// Defaults overridden by the keys of the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config file {}:{e}", path.display()))
    }

    /// Defaults overridden by the keys of `text`. Errors start with `line:column: `.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            format!("{line}:{column}: {}", e.message().trim_end())
        })?;
        let mut config = Config::default();
        file.apply(&mut config);
        Ok(config)
    }

    /// The effective configuration as a TOML document that [`Config::from_toml`] reads back.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!(
            "# switchboard effective configuration (defaults < file < environment < flags)\n\
             # keys and defaults: docs/operations.md\n\n{body}"
        )
    }

    /// Everything that can be checked without touching the network or the files named.
    pub fn validate(&self) -> Result<(), String> {
        self.runtime()?;
        if self.control_threads == 0 {
            return Err(format!("{} must be at least 1", key("control_threads")));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(format!(
                    "{} is set but {} is not: HTTPS needs both",
                    key("tls_cert"),
                    key("tls_key")
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{} is set but {} is not: HTTPS needs both",
                    key("tls_key"),
                    key("tls_cert")
                ))
            }
            _ => {}
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| format!("{} {:?}: {e}", key("log"), self.log))?;

        let auth = &self.control.auth;
        let mut ids = HashSet::new();
        for api_key in &auth.keys {
            if api_key.id.is_empty() || api_key.secret.is_empty() {
                return Err(format!(
                    "{}: every API key needs a non-empty id and secret",
                    key("auth.keys")
                ));
            }
            if !ids.insert(api_key.id.as_str()) {
                return Err(format!(
                    "{}: the key id {:?} appears twice",
                    key("auth.keys"),
                    api_key.id
                ));
            }
        }
        if auth.mode == AuthMode::Required && auth.keys.is_empty() {
            return Err(format!(
                "{} is \"required\" but no API key is configured: add [[auth.keys]] to the \
                 config file or set SWITCHBOARD_API_KEY=id:secret",
                key("auth.mode")
            ));
        }
        if let Some(admission) = &self.control.admission {
            check_url("admission.url", &admission.url)?;
            if admission.timeout_ms == 0 {
                return Err(format!(
                    "{} must be at least 1",
                    key("admission.timeout_ms")
                ));
            }
        }
        let webhooks = &self.control.webhooks;
        for url in &webhooks.urls {
            check_url("webhooks.urls", url)?;
        }
        if !webhooks.urls.is_empty() {
            for (name, value) in [
                ("webhooks.max_attempts", u64::from(webhooks.max_attempts)),
                ("webhooks.queue", webhooks.queue as u64),
                ("webhooks.timeout_ms", webhooks.timeout_ms),
            ] {
                if value == 0 {
                    return Err(format!("{} must be at least 1", key(name)));
                }
            }
        }
        if self.control.limits.max_message_bytes == 0 {
            return Err(format!(
                "{} must be at least 1",
                key("limits.max_message_bytes")
            ));
        }
        Ok(())
    }

    /// The media runtime's settings.
    pub fn runtime(&self) -> Result<RuntimeConfig, String> {
        let ports = parse_port_list(&self.udp_ports)
            .map_err(|e| format!("{} {:?}: {e}", key("udp_ports"), self.udp_ports))?;
        if self.udp_bind.is_unspecified() && self.public_ip.is_none() {
            return Err(format!(
                "{} {} needs {}: clients must be told a reachable address",
                key("udp_bind"),
                self.udp_bind,
                key("public_ip")
            ));
        }
        if let Some(ip) = self.public_ip {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "{} {ip} is not an address clients can reach",
                    key("public_ip")
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
        // The shards enforce the room size (they own the rooms); the control plane reads the
        // same limit from `control.limits`.
        config.max_participants_per_room = self.control.limits.max_participants_per_room;
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

/// `auth.mode` becomes "auth.mode (--auth-mode, SWITCHBOARD_AUTH_MODE)": errors name the key in
/// all three places an operator may have set it.
fn key(name: &str) -> String {
    let flag = match name.split_once('.') {
        None => name.to_owned(),
        Some(("auth", "keys")) => "api-key".to_owned(),
        Some(("auth", rest)) => format!("auth-{rest}"),
        Some(("admission", rest)) => format!("admission-{rest}"),
        Some(("webhooks", rest)) => format!("webhook-{rest}"),
        Some((_, rest)) => rest.to_owned(),
    }
    .replace('_', "-");
    let env = format!("SWITCHBOARD_{}", flag.replace('-', "_").to_uppercase());
    format!("{name} (--{flag}, {env})")
}

fn check_url(name: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{} {url:?} is not an http:// or https:// URL",
            key(name)
        )),
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

// ---- The file layer: every key optional, unknown keys refused (typos must not pass silently).

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    drain_timeout_s: Option<u64>,
    udp_ports: Option<String>,
    udp_bind: Option<IpAddr>,
    public_ip: Option<IpAddr>,
    shards: Option<usize>,
    control_threads: Option<usize>,
    keyframe_interval_ms: Option<u64>,
    connect_timeout_s: Option<u64>,
    disconnect_grace_s: Option<u64>,
    log: Option<String>,
    auth: Option<FileAuth>,
    admission: Option<FileAdmission>,
    webhooks: Option<FileWebhooks>,
    limits: Option<FileLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    mode: Option<AuthMode>,
    keys: Option<Vec<FileApiKey>>,
    max_ttl_s: Option<u64>,
    clock_skew_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApiKey {
    id: String,
    secret: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmission {
    url: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhooks {
    urls: Option<Vec<String>>,
    secret: Option<String>,
    max_attempts: Option<u32>,
    queue: Option<usize>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_participants_per_room: Option<usize>,
    max_rooms: Option<usize>,
    max_message_bytes: Option<usize>,
    joins_per_ip_per_minute: Option<u32>,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

impl FileConfig {
    fn apply(self, c: &mut Config) {
        set(&mut c.http, self.http);
        set(&mut c.tls_cert, self.tls_cert.map(Some));
        set(&mut c.tls_key, self.tls_key.map(Some));
        set(&mut c.drain_timeout_s, self.drain_timeout_s);
        set(&mut c.udp_ports, self.udp_ports);
        set(&mut c.udp_bind, self.udp_bind);
        set(&mut c.public_ip, self.public_ip.map(Some));
        set(&mut c.shards, self.shards);
        set(&mut c.control_threads, self.control_threads);
        set(&mut c.keyframe_interval_ms, self.keyframe_interval_ms);
        set(&mut c.connect_timeout_s, self.connect_timeout_s);
        set(&mut c.disconnect_grace_s, self.disconnect_grace_s);
        set(&mut c.log, self.log);

        // Exhaustive on purpose: a new control-plane setting fails to compile here until the
        // file layer (and the flags below) learn it.
        let ControlConfig {
            auth,
            admission,
            webhooks,
            limits,
        } = &mut c.control;
        if let Some(file) = self.auth {
            let AuthConfig {
                mode,
                keys,
                max_ttl_s,
                clock_skew_s,
            } = auth;
            set(mode, file.mode);
            set(
                keys,
                file.keys.map(|keys| {
                    keys.into_iter()
                        .map(|k| ApiKey {
                            id: k.id,
                            secret: k.secret,
                        })
                        .collect()
                }),
            );
            set(max_ttl_s, file.max_ttl_s);
            set(clock_skew_s, file.clock_skew_s);
        }
        if let Some(file) = self.admission {
            let mut current = admission.take().unwrap_or(AdmissionConfig {
                url: String::new(),
                timeout_ms: DEFAULT_ADMISSION_TIMEOUT_MS,
            });
            let AdmissionConfig { url, timeout_ms } = &mut current;
            set(url, file.url);
            set(timeout_ms, file.timeout_ms);
            *admission = Some(current);
        }
        if let Some(file) = self.webhooks {
            let WebhookConfig {
                urls,
                secret,
                max_attempts,
                queue,
                timeout_ms,
            } = webhooks;
            set(urls, file.urls);
            set(secret, file.secret);
            set(max_attempts, file.max_attempts);
            set(queue, file.queue);
            set(timeout_ms, file.timeout_ms);
        }
        if let Some(file) = self.limits {
            let Limits {
                max_participants_per_room,
                max_rooms,
                max_message_bytes,
                joins_per_ip_per_minute,
            } = limits;
            set(max_participants_per_room, file.max_participants_per_room);
            set(max_rooms, file.max_rooms);
            set(max_message_bytes, file.max_message_bytes);
            set(joins_per_ip_per_minute, file.joins_per_ip_per_minute);
        }
    }
}

// ---- The environment and flag layers: clap reads both (a flag beats its variable). A value
// that came from neither (clap's displayed default) leaves the file's value alone.

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Joins without a credential are admitted; for trying Switchboard on one machine.
    Dev,
    /// Every join needs a valid credential.
    Required,
}

impl From<AuthMode> for ModeArg {
    fn from(mode: AuthMode) -> Self {
        match mode {
            AuthMode::Dev => ModeArg::Dev,
            AuthMode::Required => ModeArg::Required,
        }
    }
}

impl From<ModeArg> for AuthMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Dev => AuthMode::Dev,
            ModeArg::Required => AuthMode::Required,
        }
    }
}

const HTTP: &str = "HTTP, TLS, logging and shutdown";
const MEDIA: &str = "Media";
const AUTH: &str = "Authentication";
const HOOKS: &str = "Admission and webhooks";
const LIMITS: &str = "Limits";

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard WebRTC SFU media server",
    after_help = "Settings come from defaults, then the --config file, then environment \
                  variables, then flags; each overrides the ones before it. File keys are the \
                  flag names with '_' (udp_ports; auth.mode in [auth]). See docs/operations.md."
)]
struct Cli {
    /// TOML config file; its keys are overridden by environment variables and flags.
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,

    /// HTTP/WebSocket listen address.
    #[arg(long, env = "SWITCHBOARD_HTTP", help_heading = HTTP,
          default_value_t = DEFAULTS.http)]
    http: SocketAddr,

    /// PEM certificate chain: serve HTTPS/WSS instead of HTTP (needs --tls-key).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", value_name = "PATH", help_heading = HTTP)]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", value_name = "PATH", help_heading = HTTP)]
    tls_key: Option<PathBuf>,

    /// On SIGTERM/SIGINT, seconds to wait for participants to leave before closing sessions.
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT_S", value_name = "S", help_heading = HTTP,
          default_value_t = DEFAULTS.drain_timeout_s)]
    drain_timeout_s: u64,

    /// Threads for HTTP/WebSocket.
    #[arg(long, env = "SWITCHBOARD_CONTROL_THREADS", value_name = "N", help_heading = HTTP,
          default_value_t = DEFAULTS.control_threads)]
    control_threads: usize,

    /// Log filter (tracing EnvFilter syntax), e.g. "info", "debug,str0m=info".
    #[arg(long, env = "SWITCHBOARD_LOG", value_name = "FILTER", help_heading = HTTP,
          default_value_t = DEFAULTS.log.clone())]
    log: String,

    /// UDP ports for media, as a range and/or list ("50000-50100", "50000,50002"). Each shard
    /// takes one port; the first free ones are used.
    #[arg(long, env = "SWITCHBOARD_UDP_PORTS", value_name = "PORTS", help_heading = MEDIA,
          default_value_t = DEFAULTS.udp_ports.clone())]
    udp_ports: String,

    /// Address the media sockets bind to.
    #[arg(long, env = "SWITCHBOARD_UDP_BIND", value_name = "IP", help_heading = MEDIA,
          default_value_t = DEFAULTS.udp_bind)]
    udp_bind: IpAddr,

    /// Address advertised to clients in ICE candidates, when the server sits behind a 1:1 NAT
    /// (cloud VM, container). Defaults to --udp-bind; required when binding 0.0.0.0 or ::.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_IP", value_name = "IP", help_heading = MEDIA)]
    public_ip: Option<IpAddr>,

    /// Number of media shards (threads, one UDP port each). 0 = one per CPU core.
    #[arg(long, env = "SWITCHBOARD_SHARDS", value_name = "N", help_heading = MEDIA,
          default_value_t = DEFAULTS.shards)]
    shards: usize,

    /// Minimum time between two keyframe requests sent to one publisher's track (ms).
    #[arg(long, env = "SWITCHBOARD_KEYFRAME_INTERVAL_MS", value_name = "MS",
          help_heading = MEDIA, default_value_t = DEFAULTS.keyframe_interval_ms)]
    keyframe_interval_ms: u64,

    /// Remove a participant whose media has not connected this long after joining (s).
    #[arg(long, env = "SWITCHBOARD_CONNECT_TIMEOUT_S", value_name = "S", help_heading = MEDIA,
          default_value_t = DEFAULTS.connect_timeout_s)]
    connect_timeout_s: u64,

    /// Remove a participant whose ICE stays disconnected this long (s).
    #[arg(long, env = "SWITCHBOARD_DISCONNECT_GRACE_S", value_name = "S", help_heading = MEDIA,
          default_value_t = DEFAULTS.disconnect_grace_s)]
    disconnect_grace_s: u64,

    /// "required": every join needs a credential signed with an API key. "dev": joins without
    /// one are admitted (a random key is made and printed when none is configured).
    #[arg(long, env = "SWITCHBOARD_AUTH_MODE", value_enum, value_name = "MODE",
          help_heading = AUTH, default_value_t = ModeArg::from(DEFAULTS.control.auth.mode))]
    auth_mode: ModeArg,

    /// API keys as ID:SECRET, comma-separated or repeated; replace the file's [[auth.keys]].
    #[arg(long = "api-key", env = "SWITCHBOARD_API_KEY", value_name = "ID:SECRET",
          value_delimiter = ',', hide_env_values = true, help_heading = AUTH)]
    api_keys: Vec<String>,

    /// Longest credential lifetime accepted (s).
    #[arg(long, env = "SWITCHBOARD_AUTH_MAX_TTL_S", value_name = "S", help_heading = AUTH,
          default_value_t = DEFAULTS.control.auth.max_ttl_s)]
    auth_max_ttl_s: u64,

    /// Clock difference tolerated between the app server minting credentials and us (s).
    #[arg(long, env = "SWITCHBOARD_AUTH_CLOCK_SKEW_S", value_name = "S", help_heading = AUTH,
          default_value_t = DEFAULTS.control.auth.clock_skew_s)]
    auth_clock_skew_s: u64,

    /// Ask this URL before admitting each join (POST). Default: no admission hook.
    #[arg(long, env = "SWITCHBOARD_ADMISSION_URL", value_name = "URL", help_heading = HOOKS)]
    admission_url: Option<String>,

    /// How long to wait for the admission URL's answer (ms).
    #[arg(long, env = "SWITCHBOARD_ADMISSION_TIMEOUT_MS", value_name = "MS",
          help_heading = HOOKS, default_value_t = DEFAULT_ADMISSION_TIMEOUT_MS)]
    admission_timeout_ms: u64,

    /// Webhook URLs for room and participant events, comma-separated; replace the file's.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URLS", value_name = "URLS", value_delimiter = ',',
          help_heading = HOOKS)]
    webhook_urls: Vec<String>,

    /// HMAC key for webhook signatures. Default: the first API key's secret.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET", value_name = "SECRET",
          hide_env_values = true, help_heading = HOOKS)]
    webhook_secret: Option<String>,

    /// Delivery attempts per webhook event (first try included).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_MAX_ATTEMPTS", value_name = "N",
          help_heading = HOOKS, default_value_t = DEFAULTS.control.webhooks.max_attempts)]
    webhook_max_attempts: u32,

    /// Webhook events waiting for delivery; beyond it new events are dropped.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_QUEUE", value_name = "N", help_heading = HOOKS,
          default_value_t = DEFAULTS.control.webhooks.queue)]
    webhook_queue: usize,

    /// Timeout of one webhook delivery attempt (ms).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_TIMEOUT_MS", value_name = "MS",
          help_heading = HOOKS, default_value_t = DEFAULTS.control.webhooks.timeout_ms)]
    webhook_timeout_ms: u64,

    /// Participants per room; 0 = unlimited.
    #[arg(long, env = "SWITCHBOARD_MAX_PARTICIPANTS_PER_ROOM", value_name = "N",
          help_heading = LIMITS,
          default_value_t = DEFAULTS.control.limits.max_participants_per_room)]
    max_participants_per_room: usize,

    /// Rooms on this server; 0 = unlimited.
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS", value_name = "N", help_heading = LIMITS,
          default_value_t = DEFAULTS.control.limits.max_rooms)]
    max_rooms: usize,

    /// Largest signalling message accepted (bytes).
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES", value_name = "BYTES",
          help_heading = LIMITS, default_value_t = DEFAULTS.control.limits.max_message_bytes)]
    max_message_bytes: usize,

    /// Joins one IP address may attempt per minute; 0 = unlimited.
    #[arg(long, env = "SWITCHBOARD_JOINS_PER_IP_PER_MINUTE", value_name = "N",
          help_heading = LIMITS,
          default_value_t = DEFAULTS.control.limits.joins_per_ip_per_minute)]
    joins_per_ip_per_minute: u32,
}

/// The value was given as a flag or an environment variable (not clap's displayed default).
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

fn parse_api_key(text: &str) -> Result<ApiKey, String> {
    match text.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(ApiKey {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        _ => {
            let id = text.split(':').next().unwrap_or_default();
            Err(format!(
                "{}: expected ID:SECRET, got {id:?} without a secret",
                key("auth.keys")
            ))
        }
    }
}

impl Cli {
    fn apply(&self, m: &ArgMatches, c: &mut Config) -> Result<(), String> {
        macro_rules! layer {
            ($($arg:ident => $($field:ident).+;)*) => {
                $( if given(m, stringify!($arg)) {
                    c.$($field).+ = self.$arg.clone().into();
                } )*
            };
        }
        layer! {
            http => http;
            drain_timeout_s => drain_timeout_s;
            control_threads => control_threads;
            log => log;
            udp_ports => udp_ports;
            udp_bind => udp_bind;
            shards => shards;
            keyframe_interval_ms => keyframe_interval_ms;
            connect_timeout_s => connect_timeout_s;
            disconnect_grace_s => disconnect_grace_s;
            auth_mode => control.auth.mode;
            auth_max_ttl_s => control.auth.max_ttl_s;
            auth_clock_skew_s => control.auth.clock_skew_s;
            webhook_max_attempts => control.webhooks.max_attempts;
            webhook_queue => control.webhooks.queue;
            webhook_timeout_ms => control.webhooks.timeout_ms;
            max_participants_per_room => control.limits.max_participants_per_room;
            max_rooms => control.limits.max_rooms;
            max_message_bytes => control.limits.max_message_bytes;
            joins_per_ip_per_minute => control.limits.joins_per_ip_per_minute;
        }
        // The rest have no default; an empty list or text (`--webhook-urls ""`) means "not set".
        if self.tls_cert.is_some() {
            c.tls_cert.clone_from(&self.tls_cert);
        }
        if self.tls_key.is_some() {
            c.tls_key.clone_from(&self.tls_key);
        }
        if self.public_ip.is_some() {
            c.public_ip = self.public_ip;
        }
        let api_keys: Vec<&String> = self.api_keys.iter().filter(|k| !k.is_empty()).collect();
        if !api_keys.is_empty() {
            c.control.auth.keys = api_keys
                .into_iter()
                .map(|k| parse_api_key(k))
                .collect::<Result<_, _>>()?;
        }
        let urls: Vec<String> = self
            .webhook_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if !urls.is_empty() {
            c.control.webhooks.urls = urls;
        }
        if let Some(secret) = self.webhook_secret.as_ref().filter(|s| !s.is_empty()) {
            c.control.webhooks.secret.clone_from(secret);
        }
        if let Some(url) = self.admission_url.as_ref().filter(|u| !u.is_empty()) {
            let timeout_ms = c
                .control
                .admission
                .as_ref()
                .map_or(DEFAULT_ADMISSION_TIMEOUT_MS, |a| a.timeout_ms);
            c.control.admission = Some(AdmissionConfig {
                url: url.clone(),
                timeout_ms,
            });
        }
        if given(m, "admission_timeout_ms") {
            match c.control.admission.as_mut() {
                Some(admission) => admission.timeout_ms = self.admission_timeout_ms,
                None => {
                    return Err(format!(
                        "{} is set but {} is not",
                        key("admission.timeout_ms"),
                        key("admission.url")
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags only: the process environment may hold SWITCHBOARD_* variables, and tests that
    /// set variables would race each other (the binary tests cover the environment).
    fn hermetic() -> clap::Command {
        Cli::command().mut_args(|arg| arg.env(None::<&'static str>))
    }

    fn run(args: &[&str]) -> Result<Config, String> {
        let args = std::iter::once("switchboard").chain(args.iter().copied());
        match load_with(hermetic(), args) {
            Ok(Command::Run(config)) => Ok(*config),
            Ok(Command::Print(text)) => Err(format!("printed {text}")),
            Err(LoadError::Invalid(e)) => Err(e),
            Err(LoadError::Cli(e)) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults_work_on_localhost() {
        let config = Config::default();
        config.validate().expect("the default config is valid");
        let rt = config.runtime().expect("default config is valid");
        assert_eq!(rt.advertised_ip(), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(config.http.port(), 7880);
        assert!(rt.shards >= 1);
        assert_eq!(config.drain_timeout(), Duration::from_secs(30));
        assert_eq!(config.tls(), None);
    }

    /// The defaults `--help` shows are the config's: giving each of them as a flag changes
    /// nothing.
    #[test]
    fn clap_defaults_are_the_config_defaults() {
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            let (Some(default), Some(long)) = (arg.get_default_values().first(), arg.get_long())
            else {
                continue;
            };
            let value = default.to_string_lossy();
            if id == "admission_timeout_ms" {
                assert_eq!(value, DEFAULT_ADMISSION_TIMEOUT_MS.to_string());
                continue;
            }
            let flag = format!("--{long}");
            let config = run(&[flag.as_str(), value.as_ref()]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config, Config::default(), "{flag} {value}");
        }
    }

    #[test]
    fn unspecified_bind_needs_public_ip() {
        let e = run(&["--udp-bind", "0.0.0.0"]).expect_err("needs --public-ip");
        assert!(e.contains("--public-ip"), "{e}");
        let config = run(&["--udp-bind", "0.0.0.0", "--public-ip", "203.0.113.7"]).expect("ok");
        assert_eq!(
            config.runtime().expect("valid").advertised_ip(),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn bad_port_list_is_reported() {
        let e = run(&["--udp-ports", "90-10"]).expect_err("reversed range");
        assert!(e.contains("--udp-ports") && e.contains("udp_ports"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn file_keys_override_defaults_and_flags_override_the_file() {
        let file = r#"
            http = "127.0.0.1:9000"
            shards = 3
            log = "debug"
            drain_timeout_s = 5

            [auth]
            mode = "required"
            [[auth.keys]]
            id = "app"
            secret = "s3cret-s3cret"

            [webhooks]
            urls = ["https://example.invalid/hook"]

            [limits]
            max_rooms = 7
        "#;
        let mut config = Config::from_toml(file).expect("parses");
        assert_eq!(config.http.port(), 9000);
        assert_eq!(config.shards, 3);
        assert_eq!(config.control.auth.mode, AuthMode::Required);
        assert_eq!(config.control.auth.keys.len(), 1);
        assert_eq!(config.control.limits.max_rooms, 7);
        // Keys the file does not name keep their defaults, also inside a table it does name.
        assert_eq!(
            config.control.auth.max_ttl_s,
            AuthConfig::default().max_ttl_s
        );
        assert_eq!(config.udp_ports, DEFAULTS.udp_ports);
        assert_eq!(
            config.control.limits.joins_per_ip_per_minute,
            Limits::default().joins_per_ip_per_minute
        );
        config.validate().expect("valid");

        let args = [
            "switchboard",
            "--shards",
            "2",
            "--api-key",
            "a:1,b:2",
            "--max-rooms",
            "9",
        ];
        let matches = hermetic().try_get_matches_from(args).expect("parse");
        let cli = Cli::from_arg_matches(&matches).expect("parse");
        cli.apply(&matches, &mut config).expect("apply");
        assert_eq!(config.shards, 2);
        assert_eq!(
            config.http.port(),
            9000,
            "not given: the file's value stays"
        );
        assert_eq!(config.log, "debug");
        assert_eq!(config.control.limits.max_rooms, 9);
        assert_eq!(
            config
                .control
                .auth
                .keys
                .iter()
                .map(|k| (k.id.as_str(), k.secret.as_str()))
                .collect::<Vec<_>>(),
            [("a", "1"), ("b", "2")]
        );
    }

    #[test]
    fn print_config_round_trips() {
        let mut config = Config {
            public_ip: Some("203.0.113.7".parse().expect("ip")),
            tls_cert: Some("/etc/switchboard/cert.pem".into()),
            tls_key: Some("/etc/switchboard/key.pem".into()),
            ..Config::default()
        };
        config.control.auth.mode = AuthMode::Required;
        config.control.auth.keys = vec![ApiKey {
            id: "app".into(),
            secret: "x:y\"z".into(),
        }];
        config.control.admission = Some(AdmissionConfig {
            url: "http://127.0.0.1:9/admit".into(),
            timeout_ms: 750,
        });
        config.control.webhooks.urls = vec!["https://a.invalid/h".into()];
        let text = config.to_toml();
        assert_eq!(Config::from_toml(&text).expect("reads back"), config);
        let defaults = Config::default().to_toml();
        assert_eq!(
            Config::from_toml(&defaults).expect("reads back"),
            Config::default()
        );
    }

    #[test]
    fn file_errors_name_the_line_and_key() {
        let e = Config::from_toml("shards = 2\nhttp = \"localhost\"\n").expect_err("bad addr");
        assert!(e.starts_with("2:8: "), "{e}");
        let e = Config::from_toml("[auth]\nmode = \"dve\"\n").expect_err("bad mode");
        assert!(e.starts_with("2:8: ") && e.contains("dve"), "{e}");
        let e = Config::from_toml("htpp = \"127.0.0.1:1\"\n").expect_err("typo");
        assert!(e.contains("unknown field `htpp`"), "{e}");
        let e = Config::from_toml("[limits]\nmax_room = 1\n").expect_err("typo in a table");
        assert!(e.starts_with("2:1: ") && e.contains("max_room"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn invalid_combinations_are_one_line_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--auth-mode", "required"], "SWITCHBOARD_API_KEY"),
            (&["--tls-cert", "c.pem"], "tls_key"),
            (&["--tls-key", "k.pem"], "tls_cert"),
            (&["--api-key", "nosecret"], "ID:SECRET"),
            (&["--api-key", "a:1,a:2"], "twice"),
            (&["--webhook-urls", "ftp://x"], "webhooks.urls"),
            (&["--admission-url", "nope"], "admission.url"),
            (&["--admission-timeout-ms", "5"], "admission.url"),
            (&["--log", "info,[[["], "log"),
            (&["--control-threads", "0"], "control_threads"),
            (&["--max-message-bytes", "0"], "max_message_bytes"),
        ];
        for (args, needle) in cases {
            let e = run(args).expect_err("invalid");
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: one line: {e}");
        }
        let ok = run(&["--auth-mode", "required", "--api-key", "app:secret"]).expect("valid");
        assert_eq!(ok.control.auth.mode, AuthMode::Required);
        let ok = run(&[
            "--admission-url",
            "http://127.0.0.1:1/admit",
            "--admission-timeout-ms",
            "50",
        ])
        .expect("valid");
        assert_eq!(
            ok.control.admission.map(|a| a.timeout_ms),
            Some(50),
            "the timeout applies to the URL given"
        );
    }

    #[test]
    fn error_messages_name_flag_and_variable() {
        assert_eq!(
            key("auth.mode"),
            "auth.mode (--auth-mode, SWITCHBOARD_AUTH_MODE)"
        );
        assert_eq!(
            key("webhooks.urls"),
            "webhooks.urls (--webhook-urls, SWITCHBOARD_WEBHOOK_URLS)"
        );
        assert_eq!(
            key("limits.max_rooms"),
            "limits.max_rooms (--max-rooms, SWITCHBOARD_MAX_ROOMS)"
        );
        assert_eq!(
            key("auth.keys"),
            "auth.keys (--api-key, SWITCHBOARD_API_KEY)"
        );
        assert_eq!(
            key("udp_ports"),
            "udp_ports (--udp-ports, SWITCHBOARD_UDP_PORTS)"
        );
        // Every name `key` makes is a real flag.
        let cmd = Cli::command();
        let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        for name in [
            "http",
            "tls_cert",
            "tls_key",
            "drain_timeout_s",
            "udp_ports",
            "udp_bind",
            "public_ip",
            "control_threads",
            "log",
            "auth.mode",
            "auth.keys",
            "auth.max_ttl_s",
            "auth.clock_skew_s",
            "admission.url",
            "admission.timeout_ms",
            "webhooks.urls",
            "webhooks.secret",
            "webhooks.max_attempts",
            "webhooks.queue",
            "webhooks.timeout_ms",
            "limits.max_participants_per_room",
            "limits.max_rooms",
            "limits.max_message_bytes",
            "limits.joins_per_ip_per_minute",
        ] {
            let text = key(name);
            let flag = text
                .split("(--")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .expect("has a flag");
            assert!(longs.contains(&flag), "{name}: --{flag} is not a flag");
        }
    }

    /// Every key the server reads is in the operations guide's table.
    #[test]
    fn every_key_is_documented() {
        let guide = include_str!("../../../docs/operations.md");
        let mut config = Config {
            public_ip: Some(IpAddr::from([192, 0, 2, 1])),
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            ..Config::default()
        };
        config.control.admission = Some(AdmissionConfig {
            url: "http://x".into(),
            timeout_ms: 1,
        });
        config.control.auth.keys = vec![ApiKey {
            id: "i".into(),
            secret: "s".into(),
        }];
        let value = toml::Value::try_from(&config).expect("serialises");
        let mut missing = Vec::new();
        collect_keys(&value, "", &mut |path| {
            if !guide.contains(&format!("`{path}`")) {
                missing.push(path.to_owned());
            }
        });
        assert!(missing.is_empty(), "docs/operations.md lacks {missing:?}");
    }

    fn collect_keys(value: &toml::Value, prefix: &str, found: &mut dyn FnMut(&str)) {
        match value {
            toml::Value::Table(table) => {
                for (name, inner) in table {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    found(&path);
                    collect_keys(inner, &path, found);
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    collect_keys(item, prefix, found);
                }
            }
            _ => {}
        }
    }
}
