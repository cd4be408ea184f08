//! Tests of the command line and config file merging (`args.rs`).

use super::*;
use std::path::Path;

fn parse(args: &[&str]) -> Result<Settings, String> {
    let mut v = vec!["switchboard-loadtest"];
    v.extend_from_slice(args);
    settings(&Args::try_parse_from(v).map_err(|e| e.to_string())?)
}

#[test]
fn defaults_and_flags() {
    let s = parse(&[]).expect("defaults");
    assert_eq!(s.scenario.url, DEFAULT_URL);
    assert_eq!((s.scenario.rooms, s.scenario.publishers_per_room), (1, 2));
    assert!(s.scenario.audio);
    assert_eq!(s.scenario.video, Some(default_video()));
    assert!(s.capacity.is_none() && !s.baseline);

    let s = parse(&[
        "--rooms",
        "3",
        "--publishers",
        "1",
        "--subscribers",
        "5",
        "--no-audio",
        "--video-bitrate",
        "1M",
        "--video-fps",
        "25",
        "--packet-size",
        "1000",
        "--duration",
        "2.5",
        "--capacity",
        "--max-loss",
        "2",
    ])
    .expect("flags");
    assert_eq!(s.scenario.subscribers_per_room, 5);
    assert!(!s.scenario.audio);
    let v = s.scenario.video.expect("video");
    assert_eq!((v.fps, v.packets_per_frame, v.packet_size), (25, 5, 1000));
    assert_eq!(s.scenario.duration, Duration::from_millis(2500));
    let c = s.capacity.expect("capacity");
    assert_eq!(
        (c.dimension, c.step, c.max_loss_percent),
        (Dimension::Subscribers, 5, 2.0)
    );

    assert!(parse(&["--audio", "--no-audio"]).is_ok_and(|s| !s.scenario.audio));
    assert!(parse(&["--no-audio", "--audio"]).is_ok_and(|s| s.scenario.audio));
    assert!(parse(&["--no-video"]).is_ok_and(|s| s.scenario.video.is_none()));
    assert!(parse(&["--red"]).is_ok_and(|s| s.scenario.red && s.scenario.audio));
    assert!(parse(&[]).is_ok_and(|s| !s.scenario.red));
}

#[test]
fn soak_flags() {
    let s = parse(&["--soak", "90s", "--rooms", "3"]).expect("soak");
    let soak = s.soak.expect("soak options");
    assert_eq!(soak.duration, Duration::from_secs(90));
    assert_eq!(soak.scenario.rooms, 3, "the scenario flags shape the soak");
    assert_eq!(
        (soak.churn_every, soak.churn_fraction, soak.sample_every),
        (Duration::from_secs(10), 0.1, Duration::from_secs(10)),
        "defaults"
    );
    let s = parse(&[
        "--soak",
        "1h",
        "--churn-every",
        "5s",
        "--churn-fraction",
        "25%",
        "--sample-every",
        "30s",
    ])
    .expect("soak");
    let soak = s.soak.expect("soak options");
    assert_eq!(soak.duration, Duration::from_secs(3600));
    assert_eq!(soak.churn_every, Duration::from_secs(5));
    assert_eq!(soak.churn_fraction, 0.25);
    assert_eq!(soak.sample_every, Duration::from_secs(30));
    assert!(parse(&[]).is_ok_and(|s| s.soak.is_none()));
    for bad in [
        &["--churn-every", "5s"][..],
        &["--soak", "1h", "--capacity"],
        &["--soak", "1h", "--baseline"],
        &["--soak", "48h"],
        &["--soak", "1h", "--churn-fraction", "2"],
        &["--soak", "1h", "--sample-every", "100ms"],
        &["--soak", "soon"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn soak_in_the_config_file() {
    let dir = std::env::temp_dir().join(format!("sblt-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("soak.toml");
    std::fs::write(
        &path,
        "soak = \"2m\"\nchurn_every = \"15s\"\nchurn_fraction = \"20%\"\nrooms = 2\n",
    )
    .expect("write");
    let p = path.to_str().expect("utf-8 path");
    let soak = parse(&["--config", p]).expect("config").soak.expect("soak");
    assert_eq!(soak.duration, Duration::from_secs(120));
    assert_eq!(
        (soak.churn_every, soak.churn_fraction),
        (Duration::from_secs(15), 0.2)
    );
    let soak = parse(&["--config", p, "--churn-fraction", "0.5"])
        .expect("config")
        .soak
        .expect("soak");
    assert_eq!(soak.churn_fraction, 0.5, "flags win");
    std::fs::write(&path, "soak = \"2m\"\nchurn_fraction = 0.3\n").expect("write");
    let soak = parse(&["--config", p]).expect("config").soak.expect("soak");
    assert_eq!(soak.churn_fraction, 0.3);
    std::fs::write(&path, "soak = \"forever\"\n").expect("write");
    assert!(parse(&["--config", p]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn remote_targets_are_refused() {
    assert!(parse(&["--url", "ws://10.1.2.3:7880/v1/ws"]).is_err());
    assert!(parse(&["--url", "ws://[::1]:7880/v1/ws"]).is_ok());
    assert!(parse(&["--spawn-server", "x", "--url", "ws://127.0.0.1:1/"]).is_err());
}

#[test]
fn shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("loadtest/scenarios") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let p = path.to_str().expect("utf-8 path");
            let s = parse(&["--config", p]).unwrap_or_else(|e| panic!("{p}: {e}"));
            s.scenario.validate().unwrap_or_else(|e| panic!("{p}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 4, "the standard scenarios are in {}", dir.display());
    let s = parse(&["--config", &format!("{}/fanout-200.toml", dir.display())]).expect("fanout");
    assert_eq!(
        (
            s.scenario.publishers_per_room,
            s.scenario.subscribers_per_room
        ),
        (1, 200)
    );
}

#[test]
fn config_file_under_flags() {
    let dir = std::env::temp_dir().join(format!("sblt-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("s.toml");
    std::fs::write(
        &path,
        "# one publisher, many viewers\nrooms = 2\npublishers = 1\nsubscribers = 50\n\
         video = false\nduration = 3\n",
    )
    .expect("write");
    let p = path.to_str().expect("utf-8 path");
    let s = parse(&["--config", p, "--subscribers", "7"]).expect("config");
    assert_eq!(s.scenario.rooms, 2);
    assert_eq!(s.scenario.subscribers_per_room, 7);
    assert!(s.scenario.video.is_none());
    assert_eq!(s.scenario.duration, Duration::from_secs(3));
    std::fs::write(&path, "bogus_key = 1\n").expect("write");
    assert!(parse(&["--config", p]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
