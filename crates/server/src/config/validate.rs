//! What the types cannot say: ranges, combinations and formats, checked after all layers so that
//! a combination may come from different ones. Every error is one line naming the keys involved
//! with their flags and variables.

use std::collections::HashSet;

use switchboard_control::AuthMode;

use super::setting::key;
use super::Config;

impl Config {
    /// Everything that can be checked without touching the network or the files named.
    pub fn validate(&self) -> Result<(), String> {
        self.runtime()?;
        if self.control_threads == 0 {
            return Err(format!("{} must be at least 1", key("control_threads")));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(format!(
                    "{} is set but {} is not: HTTPS needs both",
                    key("tls_cert"),
                    key("tls_key")
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{} is set but {} is not: HTTPS needs both",
                    key("tls_key"),
                    key("tls_cert")
                ))
            }
            _ => {}
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| format!("{} {:?}: {e}", key("log"), self.log))?;

        let auth = &self.auth;
        let mut ids = HashSet::new();
        for api_key in &auth.keys {
            if api_key.id.is_empty() || api_key.secret.is_empty() {
                return Err(format!(
                    "{}: every API key needs a non-empty id and secret",
                    key("auth.keys")
                ));
            }
            if !ids.insert(api_key.id.as_str()) {
                return Err(format!(
                    "{}: the key id {:?} appears twice",
                    key("auth.keys"),
                    api_key.id
                ));
            }
        }
        if auth.mode == AuthMode::Required && auth.keys.is_empty() {
            return Err(format!(
                "{} is \"required\" but no API key is configured: add [[auth.keys]] to the \
                 config file or set SWITCHBOARD_API_KEY=id:secret",
                key("auth.mode")
            ));
        }
        if let Some(admission) = &self.admission {
            // The table opens when any layer sets one of its keys; the URL is what it is for.
            if admission.url.is_empty() {
                return Err(format!(
                    "{} is missing: [admission] and {} need it",
                    key("admission.url"),
                    key("admission.timeout_ms")
                ));
            }
            check_url("admission.url", &admission.url)?;
            if admission.timeout_ms == 0 {
                return Err(format!(
                    "{} must be at least 1",
                    key("admission.timeout_ms")
                ));
            }
        }
        let webhooks = &self.webhooks;
        for url in &webhooks.urls {
            check_url("webhooks.urls", url)?;
        }
        if !webhooks.urls.is_empty() {
            for (name, value) in [
                ("webhooks.max_attempts", u64::from(webhooks.max_attempts)),
                ("webhooks.queue", webhooks.queue as u64),
                ("webhooks.timeout_ms", webhooks.timeout_ms),
            ] {
                if value == 0 {
                    return Err(format!("{} must be at least 1", key(name)));
                }
            }
        }
        self.validate_turn()?;
        if self.limits.max_message_bytes == 0 {
            return Err(format!(
                "{} must be at least 1",
                key("limits.max_message_bytes")
            ));
        }
        Ok(())
    }
}

impl Config {
    /// `[turn]`: URLs clients can use, a secret to sign their credentials with, a lifetime.
    fn validate_turn(&self) -> Result<(), String> {
        let turn = &self.turn;
        for url in &turn.urls {
            switchboard_control::turn::check_url(url)
                .map_err(|e| format!("{} {url:?} {}", key("turn.urls"), e.message()))?;
        }
        let relays = turn.urls.iter().any(|url| !url.starts_with("stun:"));
        if relays && turn.secret.is_empty() {
            return Err(format!(
                "{} has TURN URLs but {} is not set: set it to the TURN server's \
                 static-auth-secret",
                key("turn.urls"),
                key("turn.secret")
            ));
        }
        if !relays && !turn.secret.is_empty() {
            return Err(format!(
                "{} is set but {} has no turn: or turns: URL to hand out credentials for",
                key("turn.secret"),
                key("turn.urls")
            ));
        }
        if turn.ttl_s == 0 {
            return Err(format!("{} must be at least 1", key("turn.ttl_s")));
        }
        Ok(())
    }
}

fn check_url(name: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{} {url:?} is not an http:// or https:// URL",
            key(name)
        )),
    }
}
