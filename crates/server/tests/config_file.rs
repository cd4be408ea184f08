//! The real binary's configuration layers: defaults < `--config` file < environment < flags,
//! `--print-config`, and clear one-line errors with a non-zero exit for invalid settings.

mod process;

use process::{output, TempDir};

fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = output(&all, env);
    assert!(
        out.status.success(),
        "--print-config {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 TOML")
}

/// The value of top-level or `[table]` key `key` in printed TOML (`"limits.max_rooms"`).
fn value(toml: &str, key: &str) -> String {
    let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = "";
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']');
            continue;
        }
        if current == table {
            if let Some((k, v)) = line.split_once(" = ") {
                if k == name {
                    return v.to_owned();
                }
            }
        }
    }
    panic!("{key} not in:\n{toml}")
}

/// Fails the test (with what was printed) unless the run failed cleanly with one line naming
/// `needle`.
fn expect_error(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let out = output(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} must fail; stderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "{args:?}: config errors exit 2");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("switchboard: "), "{stderr:?}");
}

const FILE: &str = r#"
# every layer sets some of these
http = "127.0.0.1:7001"
shards = 3
log = "debug"
drain_timeout_s = 7
keyframe_interval_ms = 111

[auth]
mode = "required"
clock_skew_s = 5

[[auth.keys]]
id = "from-file"
secret = "file-secret"

[limits]
max_rooms = 4
max_participants_per_room = 8
"#;

#[test]
fn file_then_environment_then_flags() {
    let dir = TempDir::new("precedence");
    let file = dir.write("switchboard.toml", FILE);
    let file = file.to_str().expect("UTF-8 path");
    let env = [
        ("SWITCHBOARD_SHARDS", "2"),
        ("SWITCHBOARD_LOG", "warn"),
        ("SWITCHBOARD_MAX_ROOMS", "5"),
        ("SWITCHBOARD_API_KEY", "from-env:env-secret"),
    ];
    let flags = ["--config", file, "--shards", "1", "--max-rooms", "6"];
    let toml = print_config(&flags, &env);

    // Only the file sets these.
    assert_eq!(value(&toml, "http"), "\"127.0.0.1:7001\"");
    assert_eq!(value(&toml, "drain_timeout_s"), "7");
    assert_eq!(value(&toml, "auth.mode"), "\"required\"");
    assert_eq!(value(&toml, "auth.clock_skew_s"), "5");
    assert_eq!(value(&toml, "limits.max_participants_per_room"), "8");
    // File and environment: the environment wins.
    assert_eq!(value(&toml, "log"), "\"warn\"");
    assert!(toml.contains("id = \"from-env\"") && !toml.contains("from-file"));
    // File, environment and flag: the flag wins.
    assert_eq!(value(&toml, "shards"), "1");
    assert_eq!(value(&toml, "limits.max_rooms"), "6");
    // Nobody sets these: defaults.
    assert_eq!(value(&toml, "udp_ports"), "\"50000-50100\"");
    assert_eq!(value(&toml, "limits.joins_per_ip_per_minute"), "120");

    // Without the environment the file's values come through.
    let toml = print_config(&flags, &[]);
    assert_eq!(value(&toml, "log"), "\"debug\"");
    assert!(toml.contains("id = \"from-file\""));
    assert_eq!(value(&toml, "keyframe_interval_ms"), "111");
}

#[test]
fn config_file_from_the_environment_and_the_flag() {
    let dir = TempDir::new("config-env");
    let a = dir.write("a.toml", "shards = 11\n");
    let b = dir.write("b.toml", "shards = 12\n");
    let a = a.to_str().expect("UTF-8 path");
    let b = b.to_str().expect("UTF-8 path");
    let toml = print_config(&[], &[("SWITCHBOARD_CONFIG", a)]);
    assert_eq!(value(&toml, "shards"), "11");
    let toml = print_config(&["--config", b], &[("SWITCHBOARD_CONFIG", a)]);
    assert_eq!(value(&toml, "shards"), "12");
}

#[test]
fn control_plane_settings_from_the_environment() {
    let toml = print_config(
        &[],
        &[
            ("SWITCHBOARD_AUTH_MODE", "required"),
            ("SWITCHBOARD_API_KEY", "app:s1,other:s2:with-colon"),
            (
                "SWITCHBOARD_WEBHOOK_URLS",
                "http://127.0.0.1:9/a, https://hooks.invalid/b",
            ),
            ("SWITCHBOARD_ADMISSION_URL", "http://127.0.0.1:9/admit"),
            ("SWITCHBOARD_ADMISSION_TIMEOUT_MS", "900"),
            // Empty variables (as in an environment file) count as unset.
            ("SWITCHBOARD_PUBLIC_IP", ""),
        ],
    );
    assert_eq!(value(&toml, "auth.mode"), "\"required\"");
    assert!(toml.contains("id = \"app\"\nsecret = \"s1\""), "{toml}");
    assert!(
        toml.contains("id = \"other\"\nsecret = \"s2:with-colon\""),
        "{toml}"
    );
    assert_eq!(
        value(&toml, "webhooks.urls"),
        "[\"http://127.0.0.1:9/a\", \"https://hooks.invalid/b\"]"
    );
    assert_eq!(
        value(&toml, "admission.url"),
        "\"http://127.0.0.1:9/admit\""
    );
    assert_eq!(value(&toml, "admission.timeout_ms"), "900");
    assert!(!toml.contains("public_ip"));
}

#[test]
fn print_config_round_trips() {
    let dir = TempDir::new("round-trip");
    let file = dir.write("in.toml", FILE);
    let first = print_config(
        &[
            "--config",
            file.to_str().expect("UTF-8 path"),
            "--udp-bind",
            "0.0.0.0",
            "--public-ip",
            "203.0.113.9",
            "--tls-cert",
            "/etc/switchboard/cert.pem",
            "--tls-key",
            "/etc/switchboard/key.pem",
            "--admission-url",
            "https://app.invalid/admit",
        ],
        &[],
    );
    let printed = dir.write("printed.toml", &first);
    let second = print_config(&["--config", printed.to_str().expect("UTF-8 path")], &[]);
    assert_eq!(first, second);

    let defaults = print_config(&[], &[]);
    let printed = dir.write("defaults.toml", &defaults);
    assert_eq!(
        print_config(&["--config", printed.to_str().expect("UTF-8 path")], &[]),
        defaults
    );
}

#[test]
fn invalid_settings_fail_with_one_clear_line() {
    let dir = TempDir::new("invalid");
    let path = |name: &str, text: &str| dir.write(name, text).to_string_lossy().into_owned();
    let typo = path("typo.toml", "shards = 1\n[limits]\nmax_room = 3\n");
    let syntax = path("syntax.toml", "http = \"127.0.0.1:1\"\nshards = = 2\n");
    let bad_value = path("value.toml", "\n\nudp_bind = \"not-an-ip\"\n");
    let required = path("required.toml", "[auth]\nmode = \"required\"\n");

    expect_error(
        &["--config", &typo],
        &[],
        "typo.toml:3:1: unknown field `max_room`",
    );
    expect_error(&["--config", &syntax], &[], "syntax.toml:2:");
    expect_error(&["--config", &bad_value], &[], "value.toml:3:12:");
    expect_error(&["--config", &required], &[], "no API key is configured");
    expect_error(
        &[],
        &[("SWITCHBOARD_AUTH_MODE", "required")],
        "SWITCHBOARD_API_KEY=id:secret",
    );
    expect_error(&["--tls-cert", "/x/cert.pem"], &[], "tls_key");
    expect_error(&[], &[("SWITCHBOARD_TLS_KEY", "/x/key.pem")], "tls_cert");
    expect_error(&["--udp-bind", "0.0.0.0"], &[], "public_ip");
    expect_error(
        &["--config", "/nonexistent/switchboard.toml"],
        &[],
        "config file /nonexistent/switchboard.toml",
    );
    expect_error(
        &[],
        &[("SWITCHBOARD_WEBHOOK_URLS", "hooks.invalid/x")],
        "webhooks.urls",
    );
    // The file is checked even when only printing.
    expect_error(&["--config", &typo, "--print-config"], &[], "max_room");

    // Flag syntax errors are clap's (exit 2, with a usage hint).
    let out = output(&["--shards", "many"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shards"));
}
