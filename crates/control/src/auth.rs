//! Credentials (ECLWebRTC scheme) and the admin API's bearer secret.
//!
//! An application server that holds an API secret mints, for one peer id,
//! `authToken = base64(HMAC-SHA256(secret, "<timestamp>:<ttl>:<peerId>"))` and hands
//! `{timestamp, ttl, authToken}` to its client. The server checks it against every configured
//! key (there are few), in constant time.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use switchboard_protocol::{Credential, ErrorCode};

use crate::config::{ApiKey, AuthConfig, AuthMode};

/// Why a credential was refused, with the protocol error code the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    Required,
    Malformed(&'static str),
    Invalid,
    Expired,
    Future,
}

impl CredentialError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CredentialError::Required => ErrorCode::CredentialRequired,
            CredentialError::Malformed(_) | CredentialError::Invalid => {
                ErrorCode::CredentialInvalid
            }
            CredentialError::Expired => ErrorCode::CredentialExpired,
            CredentialError::Future => ErrorCode::CredentialFuture,
        }
    }

    pub fn message(&self) -> String {
        match self {
            CredentialError::Required => {
                "this server requires a credential with join (see docs/operations.md)".into()
            }
            CredentialError::Malformed(why) => format!("malformed credential: {why}"),
            CredentialError::Invalid => {
                "credential signature does not match this peer id under any API key".into()
            }
            CredentialError::Expired => "credential expired: mint a new one".into(),
            CredentialError::Future => {
                "credential timestamp is in the future: check the clock of the app server".into()
            }
        }
    }
}

/// Sign a credential: what an application server does (used by tests and documented in
/// docs/operations.md).
pub fn mint(secret: &str, peer_id: &str, timestamp: u64, ttl: u64) -> Credential {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp}:{ttl}:{peer_id}").as_bytes());
    Credential {
        timestamp,
        ttl,
        auth_token: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
    }
}

/// Check `credential` for `peer_id` at Unix time `now`. Returns when it expires.
pub fn verify(
    config: &AuthConfig,
    credential: &Credential,
    peer_id: &str,
    now: u64,
) -> Result<u64, CredentialError> {
    if credential.ttl == 0 {
        return Err(CredentialError::Malformed("ttl must be positive"));
    }
    if credential.ttl > config.max_ttl_s {
        return Err(CredentialError::Malformed(
            "ttl is longer than this server allows",
        ));
    }
    let token = base64::engine::general_purpose::STANDARD
        .decode(credential.auth_token.as_bytes())
        .map_err(|_| CredentialError::Malformed("authToken is not base64"))?;
    if token.len() != 32 {
        return Err(CredentialError::Malformed(
            "authToken is not an HMAC-SHA256",
        ));
    }
    let message = format!("{}:{}:{peer_id}", credential.timestamp, credential.ttl);
    let signed = config.keys.iter().any(|key| {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key.secret.as_bytes());
        hmac::verify(&k, message.as_bytes(), &token).is_ok()
    });
    if !signed {
        return Err(CredentialError::Invalid);
    }
    // Only a genuine credential learns whether its time is off.
    if credential.timestamp > now.saturating_add(config.clock_skew_s) {
        return Err(CredentialError::Future);
    }
    let expires = credential.timestamp.saturating_add(credential.ttl);
    if expires <= now {
        return Err(CredentialError::Expired);
    }
    Ok(expires)
}

/// Decide a join: `Ok(None)` admits without expiry (dev mode, no credential), `Ok(Some(t))`
/// admits until `t`.
pub fn admit(
    config: &AuthConfig,
    credential: Option<&Credential>,
    peer_id: &str,
    now: u64,
) -> Result<Option<u64>, CredentialError> {
    match (credential, config.mode) {
        (Some(c), _) => verify(config, c, peer_id, now).map(Some),
        (None, AuthMode::Dev) => Ok(None),
        (None, AuthMode::Required) => Err(CredentialError::Required),
    }
}

/// The id of the API key that signed `credential` for `peer_id` (after [`verify`] accepted it):
/// the scope a peer's presence is visible in.
pub fn signing_key<'a>(
    config: &'a AuthConfig,
    credential: &Credential,
    peer_id: &str,
) -> Option<&'a str> {
    let token = base64::engine::general_purpose::STANDARD
        .decode(credential.auth_token.as_bytes())
        .ok()?;
    let message = format!("{}:{}:{peer_id}", credential.timestamp, credential.ttl);
    config
        .keys
        .iter()
        .find(|key| {
            let k = hmac::Key::new(hmac::HMAC_SHA256, key.secret.as_bytes());
            hmac::verify(&k, message.as_bytes(), &token).is_ok()
        })
        .map(|key| key.id.as_str())
}

/// Does a bearer secret belong to one of the keys? Constant time per key.
pub fn is_admin_secret(keys: &[ApiKey], presented: &str) -> bool {
    keys.iter().any(|k| {
        k.secret.len() == presented.len()
            && constant_time::verify_slices_are_equal(k.secret.as_bytes(), presented.as_bytes())
                .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn config(mode: AuthMode) -> AuthConfig {
        AuthConfig {
            mode,
            keys: vec![
                ApiKey {
                    id: "app1".into(),
                    secret: "s3cret".into(),
                },
                ApiKey {
                    id: "app2".into(),
                    secret: "other".into(),
                },
            ],
            max_ttl_s: 86_400,
            clock_skew_s: 30,
        }
    }

    #[test]
    fn accept_refuse_matrix() {
        let cfg = config(AuthMode::Required);
        let good = mint("s3cret", "ada", NOW - 10, 3600);
        assert_eq!(verify(&cfg, &good, "ada", NOW), Ok(NOW - 10 + 3600));
        // Second key works too.
        let second = mint("other", "ada", NOW, 60);
        assert_eq!(verify(&cfg, &second, "ada", NOW), Ok(NOW + 60));
        // Expired.
        let old = mint("s3cret", "ada", NOW - 100, 50);
        assert_eq!(
            verify(&cfg, &old, "ada", NOW),
            Err(CredentialError::Expired)
        );
        // Future beyond skew; within skew is fine.
        let future = mint("s3cret", "ada", NOW + 300, 60);
        assert_eq!(
            verify(&cfg, &future, "ada", NOW),
            Err(CredentialError::Future)
        );
        let skewed = mint("s3cret", "ada", NOW + 20, 60);
        assert!(verify(&cfg, &skewed, "ada", NOW).is_ok());
        // Wrong secret.
        let forged = mint("guess", "ada", NOW, 60);
        assert_eq!(
            verify(&cfg, &forged, "ada", NOW),
            Err(CredentialError::Invalid)
        );
        // Wrong peer id.
        assert_eq!(
            verify(&cfg, &good, "eve", NOW),
            Err(CredentialError::Invalid)
        );
        // Tampered ttl or timestamp.
        let mut longer = good.clone();
        longer.ttl = 7200;
        assert_eq!(
            verify(&cfg, &longer, "ada", NOW),
            Err(CredentialError::Invalid)
        );
        let mut moved = good.clone();
        moved.timestamp += 1;
        assert_eq!(
            verify(&cfg, &moved, "ada", NOW),
            Err(CredentialError::Invalid)
        );
        // Malformed.
        let mut junk = good.clone();
        junk.auth_token = "!!!".into();
        assert!(matches!(
            verify(&cfg, &junk, "ada", NOW),
            Err(CredentialError::Malformed(_))
        ));
        let mut short = good.clone();
        short.auth_token = "AAAA".into();
        assert!(matches!(
            verify(&cfg, &short, "ada", NOW),
            Err(CredentialError::Malformed(_))
        ));
        let zero = mint("s3cret", "ada", NOW, 0);
        assert!(matches!(
            verify(&cfg, &zero, "ada", NOW),
            Err(CredentialError::Malformed(_))
        ));
        let huge = mint("s3cret", "ada", NOW, 10 * 86_400);
        assert!(matches!(
            verify(&cfg, &huge, "ada", NOW),
            Err(CredentialError::Malformed(_))
        ));
    }

    #[test]
    fn modes() {
        let good = mint("s3cret", "ada", NOW, 60);
        assert_eq!(admit(&config(AuthMode::Dev), None, "ada", NOW), Ok(None));
        assert_eq!(
            admit(&config(AuthMode::Required), None, "ada", NOW),
            Err(CredentialError::Required)
        );
        assert_eq!(
            admit(&config(AuthMode::Dev), Some(&good), "ada", NOW),
            Ok(Some(NOW + 60))
        );
        let forged = mint("nope", "ada", NOW, 60);
        assert_eq!(
            admit(&config(AuthMode::Dev), Some(&forged), "ada", NOW),
            Err(CredentialError::Invalid),
            "a credential, when given, is checked even in dev mode"
        );
    }

    #[test]
    fn admin_secret() {
        let keys = config(AuthMode::Required).keys;
        assert!(is_admin_secret(&keys, "s3cret"));
        assert!(is_admin_secret(&keys, "other"));
        assert!(!is_admin_secret(&keys, "s3cre"));
        assert!(!is_admin_secret(&keys, ""));
    }

    #[test]
    fn matches_an_independent_implementation() {
        // Computed with Python's hmac module:
        // base64(hmac.new(b"secret", b"1700000000:3600:peer1", sha256).digest())
        let c = mint("secret", "peer1", 1_700_000_000, 3600);
        assert_eq!(c.auth_token, "uVuiQNsH1nseYIKg64+Q2MI+2l6vDejbN+0LA8Qcgog=");
    }
}
