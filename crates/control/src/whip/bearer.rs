//! The bearer token of WHIP and WHEP requests: the existing credential (docs/credentials.md)
//! and the peer id it is bound to, in one header-safe string,
//!
//! ```text
//! Authorization: Bearer <peerId>.<timestamp>.<ttl>.<authToken>
//! ```
//!
//! `authToken` is the credential's standard base64 (no `.` in it), `timestamp` and `ttl` are
//! decimal; the peer id may itself contain `.`, so the token is split from the right.

use axum::http::{header, HeaderMap};
use switchboard_protocol::{validate_peer_id, Credential};

use super::error::WhipError;
use crate::auth::{self, CredentialError};
use crate::config::AuthConfig;

/// Who a request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `None`: dev mode without a token; the server names the participant.
    pub peer_id: Option<String>,
    /// Unix second the credential runs out (`None`: no credential).
    pub expires_at: Option<u64>,
}

/// Split a bearer token into its peer id and credential.
pub(crate) fn parse(token: &str) -> Result<(String, Credential), CredentialError> {
    let mut parts = token.rsplitn(4, '.');
    let (Some(auth_token), Some(ttl), Some(timestamp), Some(peer_id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredentialError::Malformed(
            "a bearer token is <peerId>.<timestamp>.<ttl>.<authToken>",
        ));
    };
    validate_peer_id(peer_id)
        .map_err(|_| CredentialError::Malformed("the token's peer id breaks the naming rules"))?;
    let timestamp = timestamp
        .parse()
        .map_err(|_| CredentialError::Malformed("the token's timestamp is not a number"))?;
    let ttl = ttl
        .parse()
        .map_err(|_| CredentialError::Malformed("the token's ttl is not a number"))?;
    Ok((
        peer_id.to_owned(),
        Credential {
            timestamp,
            ttl,
            auth_token: auth_token.to_owned(),
        },
    ))
}

/// Encode a credential for `peer_id` as a bearer token (what an application server hands a
/// WHIP publisher; tests use it too).
pub fn encode(peer_id: &str, credential: &Credential) -> String {
    format!(
        "{peer_id}.{}.{}.{}",
        credential.timestamp, credential.ttl, credential.auth_token
    )
}

/// Decide a request's identity from its `Authorization` header at Unix time `now`: a valid
/// token (checked even in dev mode), or nothing in dev mode.
pub(crate) fn identify(
    config: &AuthConfig,
    headers: &HeaderMap,
    now: u64,
) -> Result<Identity, WhipError> {
    let refuse = |e: CredentialError| WhipError::Unauthorized(e.message());
    let token = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                WhipError::Unauthorized("the Authorization header is not ASCII".into())
            })?;
            let token = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
                .ok_or_else(|| {
                    WhipError::Unauthorized("send Authorization: Bearer <token>".into())
                })?;
            Some(token.trim())
        }
    };
    match token {
        None => {
            auth::admit(config, None, "", now).map_err(|e| match e {
                CredentialError::Required => WhipError::Unauthorized(
                    "this server requires Authorization: Bearer <peerId>.<timestamp>.<ttl>.\
                     <authToken> (see docs/whip.md)"
                        .into(),
                ),
                other => refuse(other),
            })?;
            Ok(Identity {
                peer_id: None,
                expires_at: None,
            })
        }
        Some(token) => {
            let (peer_id, credential) = parse(token).map_err(refuse)?;
            let expires = auth::verify(config, &credential, &peer_id, now).map_err(refuse)?;
            Ok(Identity {
                peer_id: Some(peer_id),
                expires_at: Some(expires),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKey, AuthMode};
    use axum::http::HeaderValue;

    const NOW: u64 = 1_800_000_000;

    fn config(mode: AuthMode) -> AuthConfig {
        AuthConfig {
            mode,
            keys: vec![ApiKey {
                id: "app".into(),
                secret: "s3cret".into(),
            }],
            ..AuthConfig::default()
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("ascii"),
        );
        h
    }

    #[test]
    fn round_trip_with_dots_in_the_peer_id() {
        let c = auth::mint("s3cret", "obs.studio-1", NOW, 3600);
        let token = encode("obs.studio-1", &c);
        assert_eq!(parse(&token), Ok(("obs.studio-1".to_owned(), c)));
    }

    #[test]
    fn identities() {
        let required = config(AuthMode::Required);
        let dev = config(AuthMode::Dev);
        let good = encode("obs", &auth::mint("s3cret", "obs", NOW, 60));
        let id = identify(&required, &headers(&format!("Bearer {good}")), NOW).expect("valid");
        assert_eq!(id.peer_id.as_deref(), Some("obs"));
        assert_eq!(id.expires_at, Some(NOW + 60));
        // Missing: refused when required, anonymous in dev mode.
        assert!(matches!(
            identify(&required, &HeaderMap::new(), NOW),
            Err(WhipError::Unauthorized(_))
        ));
        assert_eq!(
            identify(&dev, &HeaderMap::new(), NOW).expect("dev").peer_id,
            None
        );
        // Forged, expired, malformed, other schemes: refused in both modes.
        let forged = encode("obs", &auth::mint("guess", "obs", NOW, 60));
        let expired = encode("obs", &auth::mint("s3cret", "obs", NOW - 120, 60));
        for bad in [
            format!("Bearer {forged}"),
            format!("Bearer {expired}"),
            "Bearer nonsense".to_owned(),
            "Bearer obs.x.60.AAAA".to_owned(),
            format!("Basic {good}"),
        ] {
            for cfg in [&required, &dev] {
                assert!(
                    matches!(
                        identify(cfg, &headers(&bad), NOW),
                        Err(WhipError::Unauthorized(_))
                    ),
                    "{bad}"
                );
            }
        }
        // The token names the peer: another peer's signature does not pass.
        let stolen = format!(
            "Bearer eve.{NOW}.60.{}",
            auth::mint("s3cret", "obs", NOW, 60).auth_token
        );
        assert!(identify(&required, &headers(&stolen), NOW).is_err());
    }
}
