//! TURN credentials in the TURN REST form (the "TURN Server REST API" draft that coturn's
//! `use-auth-secret` implements): for a participant `peerId` at Unix time `now`,
//!
//! ```text
//! username   = "<now + ttl>:<peerId>"
//! credential = base64( HMAC-SHA1( shared secret, username ) )
//! ```
//!
//! The TURN server recomputes the credential from the username with the same secret and refuses
//! the allocation once the expiry in the username has passed, so Switchboard and the TURN server
//! share nothing but the secret and a clock. HMAC-SHA1 is what the form prescribes (and what
//! coturn checks); aws-lc-rs, already built for str0m, provides it.

use aws_lc_rs::hmac;
use base64::Engine;
use switchboard_protocol::IceServer;

use crate::config::TurnConfig;

/// A time-limited TURN username and credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry Unix seconds>:<peerId>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// Mint the credential for `peer_id` that expires at Unix second `expires_at`.
pub fn mint(secret: &str, peer_id: &str, expires_at: u64) -> TurnCredential {
    let username = format!("{expires_at}:{peer_id}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    TurnCredential {
        credential: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
        username,
    }
}

/// Why a TURN credential does not hold (what a TURN server would answer with 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnCredentialError {
    /// The username is not `<expiry>:<peerId>`: it was not minted in this form.
    Malformed,
    /// The credential was not made from this username with this secret.
    Invalid,
    /// The expiry in the username has passed: the client needs a fresh one (`joined`/`resumed`).
    Expired,
}

/// Check `credential` for `username` as a TURN server with `secret` does at Unix time `now`:
/// returns the peer id it was minted for. Constant-time on the signature.
pub fn verify(
    secret: &str,
    username: &str,
    credential: &str,
    now: u64,
) -> Result<String, TurnCredentialError> {
    let (expiry, peer_id) = username
        .split_once(':')
        .ok_or(TurnCredentialError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| TurnCredentialError::Malformed)?;
    let tag = base64::engine::general_purpose::STANDARD
        .decode(credential)
        .map_err(|_| TurnCredentialError::Invalid)?;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    hmac::verify(&key, username.as_bytes(), &tag).map_err(|_| TurnCredentialError::Invalid)?;
    if expiry < now {
        return Err(TurnCredentialError::Expired);
    }
    Ok(peer_id.to_owned())
}

/// The `iceServers` for `peer_id` at Unix time `now`: one entry with the `turn:`/`turns:` URLs
/// and a credential expiring at `now + ttl_s`, one with the `stun:` URLs (no credential); empty
/// when nothing is configured. The settings were validated at startup (a TURN URL has a secret).
pub fn ice_servers(config: &TurnConfig, peer_id: &str, now: u64) -> Vec<IceServer> {
    let (stun, turn): (Vec<&String>, Vec<&String>) =
        config.urls.iter().partition(|url| url.starts_with("stun:"));
    let mut servers = Vec::new();
    if !turn.is_empty() && !config.secret.is_empty() {
        let minted = mint(&config.secret, peer_id, now.saturating_add(config.ttl_s));
        servers.push(IceServer {
            urls: turn.into_iter().cloned().collect(),
            username: Some(minted.username),
            credential: Some(minted.credential),
        });
    }
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun.into_iter().cloned().collect(),
            username: None,
            credential: None,
        });
    }
    servers
}

/// Why a `turn.urls` entry is refused at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnUrlError {
    /// Not `turn:`, `turns:` or `stun:` (an `http://` URL, a bare host name...).
    Scheme,
    /// Nothing after the scheme, or whitespace in it: no host a client could reach.
    NoHost,
    /// `?transport=` other than `udp` or `tcp` (the only values RFC 7065 defines).
    Transport,
}

impl TurnUrlError {
    pub fn message(&self) -> &'static str {
        match self {
            TurnUrlError::Scheme => "must start with turn:, turns: or stun:",
            TurnUrlError::NoHost => "names no host (expected e.g. turn:turn.example.com:3478)",
            TurnUrlError::Transport => "has a ?transport= other than udp or tcp",
        }
    }
}

/// Check the shape of one ICE server URL (RFC 7064/7065): `turn:`/`turns:`/`stun:`, a host,
/// and for TURN an optional `?transport=udp|tcp`.
pub fn check_url(url: &str) -> Result<(), TurnUrlError> {
    // Not `stuns:`: browsers' RTCIceServer takes turn, turns and stun only.
    let rest = ["turn:", "turns:", "stun:"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (scheme, rest)));
    let Some((scheme, rest)) = rest else {
        return Err(TurnUrlError::Scheme);
    };
    let (host, query) = match rest.split_once('?') {
        Some((host, query)) => (host, Some(query)),
        None => (rest, None),
    };
    if host.is_empty()
        || host.starts_with(':')
        || host.starts_with('/')
        || host.chars().any(char::is_whitespace)
    {
        return Err(TurnUrlError::NoHost);
    }
    match query {
        None => Ok(()),
        Some("transport=udp" | "transport=tcp") if *scheme != "stun:" => Ok(()),
        Some(_) => Err(TurnUrlError::Transport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of docs/credentials.md, computed there with Python's `hmac` and `hashlib.sha1`.
    #[test]
    fn known_vector() {
        let minted = mint("north-wind", "ada", 1_767_225_600);
        assert_eq!(minted.username, "1767225600:ada");
        assert_eq!(minted.credential, "H19j/bOMZt2ipNSLYCn1zfWLXho=");
    }

    #[test]
    fn verify_checks_secret_username_and_expiry() {
        let minted = mint("north-wind", "ada", 1_000);
        let ok = verify("north-wind", &minted.username, &minted.credential, 999);
        assert_eq!(ok, Ok("ada".to_owned()));
        assert_eq!(
            verify("north-wind", &minted.username, &minted.credential, 1_001),
            Err(TurnCredentialError::Expired)
        );
        assert_eq!(
            verify("other", &minted.username, &minted.credential, 999),
            Err(TurnCredentialError::Invalid)
        );
        assert_eq!(
            verify("north-wind", "2000:ada", &minted.credential, 999),
            Err(TurnCredentialError::Invalid),
            "a later expiry written into the username does not verify"
        );
        assert_eq!(
            verify("north-wind", "ada", &minted.credential, 999),
            Err(TurnCredentialError::Malformed)
        );
    }

    #[test]
    fn ice_servers_split_turn_and_stun() {
        let config = TurnConfig {
            urls: vec![
                "turn:t.example:3478?transport=udp".into(),
                "stun:t.example:3478".into(),
                "turns:t.example:5349?transport=tcp".into(),
            ],
            secret: "north-wind".into(),
            ttl_s: 600,
        };
        let servers = ice_servers(&config, "ada", 1_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(
            servers[0].urls,
            [
                "turn:t.example:3478?transport=udp",
                "turns:t.example:5349?transport=tcp"
            ]
        );
        let expected = mint("north-wind", "ada", 1_600);
        assert_eq!(servers[0].username.as_deref(), Some("1600:ada"));
        assert_eq!(servers[0].credential, Some(expected.credential));
        assert_eq!(servers[1].urls, ["stun:t.example:3478"]);
        assert_eq!(servers[1].username, None);
        assert!(ice_servers(&TurnConfig::default(), "ada", 1_000).is_empty());
    }

    #[test]
    fn urls_are_checked() {
        for good in [
            "turn:turn.example.com:3478?transport=udp",
            "turns:turn.example.com:5349?transport=tcp",
            "turn:192.0.2.1",
            "turn:[2001:db8::1]:3478",
            "stun:stun.example.com:3478",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("https://turn.example.com", TurnUrlError::Scheme),
            ("turn.example.com:3478", TurnUrlError::Scheme),
            ("stuns:stun.example.com", TurnUrlError::Scheme),
            ("turn:", TurnUrlError::NoHost),
            ("turn://turn.example.com", TurnUrlError::NoHost),
            ("turn:turn example.com", TurnUrlError::NoHost),
            (
                "turn:t.example:3478?transport=sctp",
                TurnUrlError::Transport,
            ),
            ("stun:t.example:3478?transport=udp", TurnUrlError::Transport),
        ] {
            assert_eq!(check_url(bad), Err(why), "{bad}");
        }
    }
}
