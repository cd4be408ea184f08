//! The `Link: <uri>; rel="ice-server"` headers of a `201 Created` (RFC 9725 §4.6): the STUN
//! and TURN servers a client should use for this session.
//!
//! Switchboard itself needs none (it is ICE-lite with a reachable host candidate); a relay
//! helps clients behind networks that block UDP. The configuration has no ICE servers on this
//! branch yet: [`ice_servers`] is the one place that reads them, and it is what the TURN
//! settings (issue #11, TURN with time-limited credentials) are to feed. Until then the list is
//! empty and no `Link` header is sent.

use crate::config::ControlConfig;

/// One ICE server as a client's `RTCIceServer` would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`, ...
    pub url: String,
    /// TURN only: the username and password (a time-limited one for `peer_id`).
    pub credential: Option<(String, String)>,
}

/// The ICE servers the configuration names for a session of `peer_id` (none configured yet:
/// see the module docs).
pub(crate) fn ice_servers(config: &ControlConfig, peer_id: &str) -> Vec<IceServer> {
    let _ = (config, peer_id);
    Vec::new()
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
    }
}
