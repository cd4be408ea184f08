//! HTTPS/WSS on the control-plane listener: rustls with the aws-lc-rs provider (the crypto str0m
//! already uses), served by axum-server with the peer address as connect info, as the plain
//! listener has it (per-IP join limits need it).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use switchboard_control::{app, AppState};

/// A TLS handshake that has not finished by then is dropped (slow or stuck clients must not
/// hold sockets).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read the PEM certificate chain and key; errors are one line naming the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            format!(
                "tls_cert {}: {}",
                cert.display(),
                pem_error(e, "certificate")
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
            cert.display()
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls_key {}: {}", key.display(), pem_error(e, "private key")))?;
    // An explicit provider: another crate in the build may enable a second rustls provider, and
    // then rustls has no process default to fall back on.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "tls_key {} is not the key of tls_cert {} (the file's first certificate)",
                key.display(),
                cert.display()
            ),
            e => format!(
                "tls_cert {} with tls_key {}: {e}",
                cert.display(),
                key.display()
            ),
        })?;
    // HTTP/1.1 only: WebSockets then upgrade the classic way in every browser (WebSockets over
    // HTTP/2 need extended CONNECT, which gains nothing here).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_error(e: rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => format!("no PEM {what} in the file"),
        other => format!("not a valid PEM file: {other}"),
    }
}

/// Serve [`app`] over TLS on `listener` until `shutdown` completes, then let open requests
/// finish for up to `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let on_shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_shutdown.graceful_shutdown(Some(grace));
    });
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls)).handshake_timeout(HANDSHAKE_TIMEOUT);
    axum_server::Server::from_listener(listener)
        .acceptor(acceptor)
        .handle(handle)
        .serve(app(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}
