//! The `Link: <uri>; rel="ice-server"` headers of a `201 Created` (RFC 9725 §4.6): the STUN
//! and TURN servers a client should use for this session.
//!
//! Switchboard itself needs none (it is ICE-lite with a reachable host candidate); a relay
//! helps clients behind networks that block UDP. They are the `turn.urls` of the configuration,
//! with a TURN credential minted for the session's peer id exactly as `joined.iceServers`
//! carries one (see [`crate::turn`]); with no `turn.urls` no `Link` header is sent.

use crate::config::ControlConfig;

/// One ICE server as a client's `RTCIceServer` would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`, ...
    pub url: String,
    /// TURN only: the username and password (a time-limited one for `peer_id`).
    pub credential: Option<(String, String)>,
}

/// The ICE servers the configuration names for a session of `peer_id`, one per URL (a `Link`
/// header names one URI), TURN ones with a credential expiring `turn.ttl_s` from now.
pub(crate) fn ice_servers(config: &ControlConfig, peer_id: &str) -> Vec<IceServer> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::turn::ice_servers(&config.turn, peer_id, now)
        .into_iter()
        .flat_map(|server| {
            let credential = server.username.zip(server.credential);
            server.urls.into_iter().map(move |url| IceServer {
                url,
                credential: credential.clone(),
            })
        })
        .collect()
}

/// A quoted-string parameter value (RFC 8288 §3): `"` and `\` escaped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One `Link` header value.
pub(crate) fn link(server: &IceServer) -> String {
    let mut out = format!("<{}>; rel=\"ice-server\"", server.url);
    if let Some((username, password)) = &server.credential {
        out.push_str(&format!(
            "; username={}; credential={}; credential-type=\"password\"",
            quoted(username),
            quoted(password)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_values() {
        let stun = IceServer {
            url: "stun:stun.example.net".into(),
            credential: None,
        };
        assert_eq!(link(&stun), "<stun:stun.example.net>; rel=\"ice-server\"");
        let turn = IceServer {
            url: "turn:turn.example.net?transport=udp".into(),
            credential: Some(("1700000000:obs".into(), "a\"b".into())),
        };
        assert_eq!(
            link(&turn),
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; \
             username=\"1700000000:obs\"; credential=\"a\\\"b\"; credential-type=\"password\""
        );
        assert!(ice_servers(&ControlConfig::default(), "obs").is_empty());
        let mut config = ControlConfig::default();
        config.turn.urls = vec![
            "turn:turn.example.net:3478?transport=udp".into(),
            "turns:turn.example.net:5349?transport=tcp".into(),
            "stun:stun.example.net".into(),
        ];
        config.turn.secret = "north-wind".into();
        let servers = ice_servers(&config, "obs");
        assert_eq!(servers.len(), 3, "{servers:?}");
        for turn in &servers[..2] {
            let (username, password) = turn.credential.clone().expect("TURN has a credential");
            assert!(username.ends_with(":obs"), "{username}");
            assert_eq!(
                crate::turn::verify(&config.turn.secret, &username, &password, 0),
                Ok("obs".to_owned())
            );
        }
        assert_eq!(servers[2].credential, None);
    }
}
