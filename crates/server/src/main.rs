//! `switchboard`: the SFU server. Runs with no arguments on a loopback default config.

mod config;

use std::sync::Arc;

use clap::Parser;
use switchboard_control::{serve, AppState};
use switchboard_runtime::MediaRuntime;
use tracing::{error, info};

use config::Config;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    init_logging(&config.log);
    match run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("switchboard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
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
    let http = config.http;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.control_threads.max(1))
        .thread_name("control")
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let listener = tokio::net::TcpListener::bind(http)
            .await
            .map_err(|e| format!("cannot listen on {http}: {e}"))?;
        let media = Arc::new(MediaRuntime::start(runtime_config)?);
        let local = listener.local_addr()?;
        info!(
            http = %local,
            shards = media.shard_count(),
            "switchboard ready: ws://{local}/v1/ws"
        );
        let for_shutdown = media.clone();
        let shutdown = async move {
            wait_for_signal().await;
            info!("shutting down: closing sessions");
            // Tell every participant, stop the shards; the WebSockets then close and the HTTP
            // server's graceful shutdown completes.
            let _ = tokio::task::spawn_blocking(move || for_shutdown.shutdown()).await;
        };
        serve(listener, AppState::new(media), shutdown).await?;
        info!("bye");
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
