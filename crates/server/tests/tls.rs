//! HTTPS and WSS from the real binary with a self-signed certificate made for the test: a client
//! that trusts it gets `/healthz` and joins a room over `wss://`; one that does not is refused;
//! unreadable certificate files stop the server at startup with a clear line.

mod process;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use process::{output, Server, TempDir, LOOPBACK};
use rustls::pki_types::{CertificateDer, ServerName};
use switchboard_protocol::{ErrorCode, LeaveReason, ServerMessage};
use tokio_tungstenite::tungstenite::{self, Message};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate DER, cert PEM, key PEM).
fn self_signed() -> (CertificateDer<'static>, String, String) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let der = cert.der().clone();
    let cert_pem = pem("CERTIFICATE", &der);
    let key_pem = pem("PRIVATE KEY", &key.serialize_der());
    (der, cert_pem, key_pem)
}

/// PEM armour (RFC 7468): base64 in 64-column lines.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let word = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn client_config(trusted: Option<&CertificateDer<'static>>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(cert) = trusted {
        roots.add(cert.clone()).expect("trust the test certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // Finish the handshake now, so a refused certificate shows up here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// `GET path` over HTTPS; the raw response.
fn https_get(addr: SocketAddr, path: &str, config: Arc<rustls::ClientConfig>) -> String {
    let mut tls = connect_tls(addr, config).expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    // The server may close without close_notify once the response is out; keep what came.
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn recv(ws: &mut tungstenite::WebSocket<Tls>) -> Option<ServerMessage> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                return Some(serde_json::from_str(text.as_str()).expect("server JSON"))
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn https_and_wss_with_a_trusted_certificate() {
    let dir = TempDir::new("tls");
    let (der, cert_pem, key_pem) = self_signed();
    let cert = dir.write("cert.pem", &cert_pem);
    let key = dir.write("key.pem", &key_pem);
    let mut args = LOOPBACK.to_vec();
    args.extend([
        "--tls-cert",
        cert.to_str().expect("UTF-8 path"),
        "--tls-key",
        key.to_str().expect("UTF-8 path"),
        "--drain-timeout-s",
        "10",
        "--joins-per-ip-per-minute",
        "1",
    ]);
    let mut server = Server::start(&args);
    assert!(
        server.url.starts_with("wss://"),
        "ready line: {}",
        server.url
    );
    assert_eq!(server.http.ip(), IpAddr::from([127, 0, 0, 1]));
    let trusting = client_config(Some(&der));

    let response = https_get(server.http, "/healthz", trusting.clone());
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    assert!(response.ends_with("ok\n"), "{response:?}");

    // A client that does not trust the certificate is refused during the handshake.
    let refused = connect_tls(server.http, client_config(None));
    assert!(refused.is_err(), "an untrusted certificate must fail");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(server.http).expect("connect");
    plain.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served"
    );

    // Signalling over wss://.
    let wss = |peer: &str| {
        let tls = connect_tls(server.http, trusting.clone()).expect("TLS handshake");
        let (mut ws, _) = tungstenite::client(server.url.as_str(), tls).expect("wss handshake");
        let join = format!(r#"{{"type":"join","room":"tls","peerId":"{peer}"}}"#);
        ws.send(Message::text(join)).expect("send join");
        let reply = recv(&mut ws);
        (ws, reply)
    };
    let (mut ws, reply) = wss("secure");
    match reply {
        Some(ServerMessage::Joined { room, peer_id, .. }) => {
            assert_eq!((room.as_str(), peer_id.as_str()), ("tls", "secure"));
        }
        other => panic!("expected joined, got {other:?}"),
    }
    // The TLS listener passes the peer address on, as the plain one does: the per-address join
    // limit (1 a minute here) refuses the second join.
    let (_second, reply) = wss("again");
    assert!(
        matches!(
            reply,
            Some(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            })
        ),
        "expected the second join rate-limited, got {reply:?}"
    );

    // A drain over TLS: the notice, then (second signal) the shutdown, then a clean exit.
    server.signal("TERM");
    assert_eq!(
        recv(&mut ws),
        Some(ServerMessage::Draining {
            deadline_ms: 10_000
        })
    );
    server.signal("TERM");
    assert_eq!(
        recv(&mut ws),
        Some(ServerMessage::Left {
            reason: LeaveReason::ServerShutdown
        })
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the server exits after the drain");
    assert!(status.success(), "clean exit, got {status}");
}

#[test]
fn unreadable_certificate_files_stop_the_server() {
    let dir = TempDir::new("tls-bad");
    let (_, cert_pem, key_pem) = self_signed();
    let (_, _, other_key_pem) = self_signed();
    let cert = dir.write("cert.pem", &cert_pem);
    let key = dir.write("key.pem", &key_pem);
    let other_key = dir.write("other-key.pem", &other_key_pem);
    let garbage = dir.write("garbage.pem", "not a certificate\n");
    let missing = dir.0.join("missing.pem");
    let cases = [
        (&missing, &key, "tls_cert"),
        (&cert, &missing, "tls_key"),
        (&garbage, &key, "no PEM certificate"),
        (&cert, &garbage, "no PEM private key"),
        (&cert, &other_key, "tls_key"),
    ];
    for (cert, key, needle) in cases {
        let mut args = LOOPBACK.to_vec();
        args.extend([
            "--tls-cert",
            cert.to_str().expect("UTF-8 path"),
            "--tls-key",
            key.to_str().expect("UTF-8 path"),
        ]);
        let out = output(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cert:?} {key:?} must fail");
        assert!(
            stderr.contains(needle),
            "{cert:?} {key:?}: {stderr:?} lacks {needle:?}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    }
}
