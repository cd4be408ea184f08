//! `switchboard`: the SFU server. Runs with no arguments on a loopback default config; see
//! `switchboard --help` and docs/operations.md.

mod config;
mod shutdown;
mod tls;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use switchboard_control::{serve, AppState};
use switchboard_runtime::MediaRuntime;
use tracing::{error, info, warn};

use config::{Command, Config, LoadError};
use shutdown::Signals;

/// After the sessions are closed, open HTTP connections get this long to finish.
const HTTP_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let config = match config::load(std::env::args_os()) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Print(toml)) => {
            print!("{toml}");
            return ExitCode::SUCCESS;
        }
        Err(LoadError::Cli(e)) => e.exit(),
        Err(LoadError::Invalid(e)) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    // The filter was validated with the rest of the config.
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let runtime_config = config.runtime()?;
    // Read the certificate before anything binds: a bad file is a startup error.
    let tls = match config.tls() {
        Some((cert, key)) => Some(tls::server_config(cert, key)?),
        None => None,
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.control_threads.max(1))
        .thread_name("control")
        .enable_all()
        .build()?;
    let result = tokio.block_on(serve_until_stopped(config, runtime_config, tls));
    // Do not wait for stragglers (a blocking task stuck on a dead peer) forever.
    tokio.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn serve_until_stopped(
    config: Config,
    runtime_config: switchboard_runtime::RuntimeConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = Signals::new()?;
    let http = config.http;
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|e| format!("cannot listen on {http}: {e}"))?;
    let local = listener.local_addr()?;
    for warning in runtime_config.address_warnings(switchboard_runtime::is_local_address) {
        warn!("{warning}");
    }
    let media = Arc::new(MediaRuntime::start(runtime_config)?);
    #[cfg(debug_assertions)]
    test_faults(&media);
    let state = AppState::new(media.clone(), config.control());
    // Clients are told this deadline in their `draining` notice.
    state.set_drain_timeout(config.drain_timeout());

    if let Some(key) = state.dev_key() {
        let line = format!("dev mode: API key id={} secret={}", key.id, key.secret);
        warn!("{line} (generated for this run; configure keys and auth.mode = \"required\" for real users)");
        eprintln!("switchboard: {line}");
    }
    if !config.turn.urls.is_empty() {
        // The secret stays out of the log.
        info!(
            urls = %config.turn.urls.join(","),
            ttl_s = config.turn.ttl_s,
            "TURN: clients get these servers with credentials minted per participant"
        );
    }
    let (ws, web) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    info!(
        http = %local,
        tls = tls.is_some(),
        shards = media.shard_count(),
        demo = %format!("{web}://{local}/"),
        "switchboard ready: {ws}://{local}/v1/ws"
    );

    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let state = state.clone();
        let media = media.clone();
        let drain_timeout = config.drain_timeout();
        async move {
            let signal = signals.recv().await;
            info!("{signal}: shutting down");
            shutdown::drain(&state, drain_timeout, &mut signals).await;
            // Past the drain, one more signal means "now".
            tokio::spawn(async move {
                let signal = signals.recv().await;
                error!("{signal} while shutting down: exiting at once");
                std::process::exit(1);
            });
            info!("closing sessions");
            // Every remaining participant gets `left {serverShutdown}`, the shards stop; the
            // WebSockets then close and the HTTP server's graceful shutdown completes.
            let _ = tokio::task::spawn_blocking(move || media.shutdown()).await;
            let _ = stopped_tx.send(());
        }
    };
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls {
        None => Box::pin(serve(listener, state, shutdown)),
        Some(tls) => Box::pin(tls::serve(listener, state, tls, shutdown, HTTP_GRACE)),
    };
    tokio::select! {
        result = server => result?,
        () = after_stop(stopped_rx) => {
            warn!("HTTP connections still open {} s after shutdown; exiting", HTTP_GRACE.as_secs());
        }
    }
    info!("bye");
    Ok(())
}

/// A test hook of debug builds only (release builds do not have it): with
/// `SWITCHBOARD_TEST_STALL_SHARD_MS=N` shard 0 blocks for N ms right after start, as a stuck
/// shard would, so the binary's tests can fill its queue and check that SIGTERM still exits.
#[cfg(debug_assertions)]
fn test_faults(media: &MediaRuntime) {
    let Some(ms) = std::env::var("SWITCHBOARD_TEST_STALL_SHARD_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    warn!(ms, "test hook: stalling shard 0");
    let stall = switchboard_runtime::RuntimeFault::Stall(Duration::from_millis(ms));
    if let Err(e) = media.inject_fault(0, stall) {
        warn!(error = %e, "test hook: could not stall shard 0");
    }
}

/// Resolves `HTTP_GRACE` after the shutdown sequence finished (never, if it did not run).
async fn after_stop(stopped: tokio::sync::oneshot::Receiver<()>) {
    match stopped.await {
        Ok(()) => tokio::time::sleep(HTTP_GRACE + Duration::from_secs(1)).await,
        Err(_) => std::future::pending().await,
    }
}
