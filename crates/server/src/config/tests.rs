//! The configuration's unit tests: layers, names, errors, printing, and the table against the
//! operations guide. The binary tests (`tests/config_file.rs`) cover the real environment.

use std::net::IpAddr;
use std::time::Duration;

use switchboard_control::{AuthConfig, AuthMode, ControlConfig, Limits};

use super::layers::{command, load_with};
use super::setting::{key, settings};
use super::values::ApiKeyEntry;
use super::{AdmissionSettings, Command, Config, LoadError};

/// Flags only: the process environment may hold SWITCHBOARD_* variables, and tests that
/// set variables would race each other (the binary tests cover the environment).
fn hermetic() -> clap::Command {
    command().mut_args(|arg| arg.env(None::<&'static str>))
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
/// nothing (with the optional tables open, so that their keys have somewhere to go).
#[test]
fn clap_defaults_are_the_config_defaults() {
    let open = ["--admission-url", "http://127.0.0.1:1/admit"];
    let baseline = run(&open).unwrap_or_else(|e| panic!("{e}"));
    let mut shown = 0;
    for arg in hermetic().get_arguments() {
        let (Some(default), Some(long)) = (arg.get_default_values().first(), arg.get_long()) else {
            continue;
        };
        let value = default.to_string_lossy();
        let flag = format!("--{long}");
        let mut args = open.to_vec();
        args.extend([flag.as_str(), value.as_ref()]);
        let config = run(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config, baseline, "{flag} {value}");
        shown += 1;
    }
    assert!(shown > 20, "only {shown} defaults shown");
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
fn network_settings_reach_the_runtime_and_bad_ones_are_refused() {
    let config = run(&[
        "--udp-bind6",
        "::1",
        "--advertise-ips",
        "10.0.0.5, fd00::5",
        "--tcp-port",
        "7881",
    ])
    .expect("valid");
    let rt = config.runtime().expect("valid");
    assert_eq!(rt.bind_ip6, Some("::1".parse().expect("ip")));
    assert_eq!(rt.tcp_port, Some(7881));
    let binds = rt.binds();
    assert_eq!(binds.len(), 2);
    assert_eq!(
        binds[0].1,
        vec![
            "127.0.0.1".parse::<IpAddr>().expect("ip"),
            "10.0.0.5".parse().expect("ip")
        ]
    );
    assert_eq!(
        binds[1].1,
        vec![
            "::1".parse::<IpAddr>().expect("ip"),
            "fd00::5".parse().expect("ip")
        ]
    );
    let refused: &[(&[&str], &str)] = &[
        (&["--udp-bind6", "127.0.0.2"], "udp_bind6"),
        (&["--udp-bind6", "::"], "public_ip6"),
        (&["--public-ip6", "2001:db8::1"], "udp_bind6"),
        (&["--advertise-ips", "nope"], "advertise_ips"),
        (&["--advertise-ips", "fd00::5"], "advertise_ips"),
        (&["--public-ip", "2001:db8::1"], "family"),
    ];
    for (args, needle) in refused {
        let e = run(args)
            .and_then(|c| c.runtime().map(|_| ()))
            .expect_err("refused");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains('\n'), "{args:?}: one line: {e}");
    }
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
    assert_eq!(config.auth.mode, AuthMode::Required);
    assert_eq!(config.auth.keys.len(), 1);
    assert_eq!(config.limits.max_rooms, 7);
    // Keys the file does not name keep their defaults, also inside a table it does name.
    assert_eq!(config.auth.max_ttl_s, AuthConfig::default().max_ttl_s);
    assert_eq!(config.udp_ports, Config::default().udp_ports);
    assert_eq!(
        config.limits.joins_per_ip_per_minute,
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
    config.lay_flags(&matches).expect("apply");
    assert_eq!(config.shards, 2);
    assert_eq!(
        config.http.port(),
        9000,
        "not given: the file's value stays"
    );
    assert_eq!(config.log, "debug");
    assert_eq!(config.limits.max_rooms, 9);
    assert_eq!(
        config
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
    config.auth.mode = AuthMode::Required;
    config.auth.keys = vec![ApiKeyEntry {
        id: "app".into(),
        secret: "x:y\"z".into(),
    }];
    config.admission = Some(AdmissionSettings {
        url: "http://127.0.0.1:9/admit".into(),
        timeout_ms: 750,
        every_signal: false,
    });
    config.webhooks.urls = vec!["https://a.invalid/h".into()];
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
    let e = Config::from_toml("[[auth.keys]]\nid = \"a\"\nsecret = \"b\"\nscret = \"c\"\n")
        .expect_err("typo in a key entry");
    assert!(e.starts_with("4:1: ") && e.contains("scret"), "{e}");
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
        (
            &["--turn-urls", "https://turn.example.com"],
            "turn:, turns: or stun:",
        ),
        (&["--turn-urls", "turn:"], "names no host"),
        (
            &["--turn-urls", "turn:t.example:3478?transport=sctp"],
            "transport",
        ),
        (&["--turn-urls", "turn:t.example:3478"], "turn.secret"),
        (&["--turn-secret", "s"], "turn.urls"),
        (
            &[
                "--turn-urls",
                "turn:t.example",
                "--turn-secret",
                "s",
                "--turn-ttl-s",
                "0",
            ],
            "turn.ttl_s",
        ),
    ];
    for (args, needle) in cases {
        let e = run(args).expect_err("invalid");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains('\n'), "{args:?}: one line: {e}");
    }
    let ok = run(&["--auth-mode", "required", "--api-key", "app:secret"]).expect("valid");
    assert_eq!(ok.auth.mode, AuthMode::Required);
    let ok = run(&[
        "--admission-url",
        "http://127.0.0.1:1/admit",
        "--admission-timeout-ms",
        "50",
    ])
    .expect("valid");
    assert_eq!(
        ok.admission.map(|a| a.timeout_ms),
        Some(50),
        "the timeout applies to the URL given"
    );
    let ok = run(&[
        "--turn-urls",
        "turn:t.example:3478?transport=udp,turns:t.example:5349?transport=tcp",
        "--turn-secret",
        "shared",
    ])
    .expect("valid");
    let turn = ok.control().turn;
    assert_eq!(turn.urls.len(), 2);
    assert_eq!((turn.secret.as_str(), turn.ttl_s), ("shared", 86_400));
    run(&["--turn-urls", "stun:stun.example.com:3478"]).expect("STUN needs no secret");
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
}

/// The names every setting had before the table: file key, flag, variable. A row that changes
/// one breaks deployments.
#[test]
fn names_are_stable() {
    let expected = [
        ("http", "http"),
        ("tls_cert", "tls-cert"),
        ("tls_key", "tls-key"),
        ("drain_timeout_s", "drain-timeout-s"),
        ("udp_ports", "udp-ports"),
        ("udp_bind", "udp-bind"),
        ("public_ip", "public-ip"),
        ("shards", "shards"),
        ("control_threads", "control-threads"),
        ("keyframe_interval_ms", "keyframe-interval-ms"),
        ("connect_timeout_s", "connect-timeout-s"),
        ("disconnect_grace_s", "disconnect-grace-s"),
        ("bandwidth_estimation", "bandwidth-estimation"),
        ("max_subscriber_kbps", "max-subscriber-kbps"),
        ("dynacast", "dynacast"),
        ("udp_gso", "udp-gso"),
        ("log", "log"),
        ("auth.mode", "auth-mode"),
        ("auth.keys", "api-key"),
        ("auth.max_ttl_s", "auth-max-ttl-s"),
        ("auth.clock_skew_s", "auth-clock-skew-s"),
        ("admission.url", "admission-url"),
        ("admission.timeout_ms", "admission-timeout-ms"),
        ("webhooks.urls", "webhook-urls"),
        ("webhooks.secret", "webhook-secret"),
        ("webhooks.max_attempts", "webhook-max-attempts"),
        ("webhooks.queue", "webhook-queue"),
        ("webhooks.timeout_ms", "webhook-timeout-ms"),
        (
            "limits.max_participants_per_room",
            "max-participants-per-room",
        ),
        ("limits.max_rooms", "max-rooms"),
        ("limits.max_message_bytes", "max-message-bytes"),
        ("limits.joins_per_ip_per_minute", "joins-per-ip-per-minute"),
        ("turn.urls", "turn-urls"),
        ("turn.secret", "turn-secret"),
        ("turn.ttl_s", "turn-ttl-s"),
    ];
    let cmd = hermetic();
    for (name, flag) in expected {
        let env = format!("SWITCHBOARD_{}", flag.replace('-', "_").to_uppercase());
        assert_eq!(key(name), format!("{name} (--{flag}, {env})"));
        let arg = cmd
            .get_arguments()
            .find(|arg| arg.get_id().as_str() == name)
            .unwrap_or_else(|| panic!("{name} is not an argument"));
        assert_eq!(arg.get_long(), Some(flag), "{name}");
    }
    // New rows may only add names; they cannot reuse one.
    for names in [
        settings()
            .iter()
            .map(|s| s.key.to_owned())
            .collect::<Vec<_>>(),
        settings().iter().map(|s| s.flag.clone()).collect(),
        settings().iter().map(|s| s.env.clone()).collect(),
    ] {
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a name appears twice: {names:?}");
    }
}

/// Every `key("...")` in the error messages names a setting (or the message would lose its flag
/// and variable).
#[test]
fn errors_name_real_settings() {
    let sources = [
        include_str!("mod.rs"),
        include_str!("validate.rs"),
        include_str!("values.rs"),
    ];
    let mut names = Vec::new();
    for source in sources {
        for (_, rest) in source
            .match_indices("key(\"")
            .map(|(i, _)| source.split_at(i + 5))
        {
            names.extend(rest.split('"').next());
        }
    }
    assert!(names.len() > 10, "found only {names:?}");
    for name in names {
        assert!(
            settings().iter().any(|s| s.key == name),
            "key({name:?}) is not a setting"
        );
    }
}

/// The control plane's defaults are `switchboard_control`'s, as before the table.
#[test]
fn control_defaults_are_the_control_crates() {
    assert_eq!(Config::default().control(), ControlConfig::default());
}

#[test]
fn every_setting_has_help() {
    for setting in settings() {
        let arg = hermetic()
            .get_arguments()
            .find(|arg| arg.get_id().as_str() == setting.key)
            .cloned()
            .unwrap_or_else(|| panic!("{} is not an argument", setting.key));
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(help.len() > 10, "{}: help {help:?}", setting.key);
        assert!(
            arg.get_help_heading().is_some(),
            "{}: no heading",
            setting.key
        );
    }
}

/// Each mode `--help` lists is one serde reads (the parser maps the names through serde).
#[test]
fn auth_modes_parse() {
    for (name, mode) in [("dev", AuthMode::Dev), ("required", AuthMode::Required)] {
        let config = run(&["--auth-mode", name, "--api-key", "a:b"]).expect("valid");
        assert_eq!(config.auth.mode, mode);
    }
    let e = run(&["--auth-mode", "dve"]).expect_err("not a mode");
    assert!(e.contains("possible values"), "{e}");
}

/// An empty flag value is "not given" for text and lists, as an empty variable is.
#[test]
fn empty_values_keep_the_layer_below() {
    let mut config = Config::from_toml(
        "[webhooks]\nurls = [\"https://a.invalid/h\"]\nsecret = \"file\"\n\
         [[auth.keys]]\nid = \"app\"\nsecret = \"s\"\n",
    )
    .expect("parses");
    let before = config.clone();
    let args = [
        "switchboard",
        "--webhook-secret",
        "",
        "--webhook-urls",
        "",
        "--api-key",
        "",
        "--admission-url",
        "",
    ];
    let matches = hermetic().try_get_matches_from(args).expect("parse");
    config.lay_flags(&matches).expect("apply");
    // `--admission-url ""` opened the table (a key of it was given) with nothing in it.
    assert_eq!(config.admission.take(), Some(AdmissionSettings::default()));
    assert_eq!(config, before);
}

/// The table's headings, in the order of their first row.
#[test]
fn help_is_grouped_by_heading() {
    // With the variables (`hermetic` takes them out): `--help` shows them.
    let help = command().render_long_help().to_string();
    let mut at = 0;
    for heading in [
        "HTTP, TLS, logging and shutdown:",
        "Media:",
        "Authentication:",
        "Admission and webhooks:",
        "Limits:",
    ] {
        let found = help[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} missing or out of order in:\n{help}"));
        at += found;
    }
    assert!(help.contains("[env: SWITCHBOARD_MAX_ROOMS="), "{help}");
    assert!(
        help.contains("[env: SWITCHBOARD_API_KEY]"),
        "secrets hide their value"
    );
}

/// Every key the server reads is in the operations guide's table.
#[test]
fn every_key_is_documented() {
    let guide = include_str!("../../../../docs/operations.md");
    let mut config = Config {
        public_ip: Some(IpAddr::from([192, 0, 2, 1])),
        tls_cert: Some("c".into()),
        tls_key: Some("k".into()),
        ..Config::default()
    };
    config.admission = Some(AdmissionSettings {
        url: "http://x".into(),
        timeout_ms: 1,
        every_signal: false,
    });
    config.auth.keys = vec![ApiKeyEntry {
        id: "i".into(),
        secret: "s".into(),
    }];
    config.turn.urls = vec!["turn:t.example".into()];
    config.turn.secret = "s".into();
    let value = toml::Value::try_from(&config).expect("serialises");
    let mut missing = Vec::new();
    collect_keys(&value, "", &mut |path| {
        if !guide.contains(&format!("`{path}`")) {
            missing.push(path.to_owned());
        }
    });
    // And every flag and variable.
    for setting in settings() {
        for name in [format!("--{}", setting.flag), setting.env.clone()] {
            if !guide.contains(&format!("`{name}`")) {
                missing.push(name);
            }
        }
    }
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
