//! Naming rules shared by the server (which enforces them) and clients (which can check early).

use std::fmt;

/// Why a name was refused; the `Display` text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { max: usize },
    BadCharacter(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "must not be empty"),
            NameError::TooLong { max } => write!(f, "must be at most {max} characters"),
            NameError::BadCharacter(c) => write!(f, "must not contain {c:?}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Room names and peer ids appear in URLs, logs and metrics labels, so they are kept to a safe
/// alphabet: ASCII letters, digits, `-`, `_` and `.`, 1 to 64 characters.
fn validate_token(value: &str) -> Result<(), NameError> {
    const MAX: usize = 64;
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    if value.chars().count() > MAX {
        return Err(NameError::TooLong { max: MAX });
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(NameError::BadCharacter(c)),
        None => Ok(()),
    }
}

pub fn validate_room_name(room: &str) -> Result<(), NameError> {
    validate_token(room)
}

pub fn validate_peer_id(peer_id: &str) -> Result<(), NameError> {
    validate_token(peer_id)
}

/// Display names are free text for people (any script), but bounded and without control
/// characters so they cannot break a UI or a log line.
pub fn validate_display_name(name: &str) -> Result<(), NameError> {
    const MAX: usize = 100;
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX {
        return Err(NameError::TooLong { max: MAX });
    }
    match name.chars().find(|c| c.is_control()) {
        Some(c) => Err(NameError::BadCharacter(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(validate_room_name("lobby-1_a.b"), Ok(()));
        assert_eq!(validate_room_name(""), Err(NameError::Empty));
        assert_eq!(validate_room_name("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(
            validate_peer_id(&"x".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
        assert_eq!(validate_peer_id("ünï"), Err(NameError::BadCharacter('ü')));
    }

    #[test]
    fn display_names() {
        assert_eq!(validate_display_name("Zoë 山田"), Ok(()));
        assert_eq!(validate_display_name("  "), Err(NameError::Empty));
        assert_eq!(
            validate_display_name("a\nb"),
            Err(NameError::BadCharacter('\n'))
        );
    }
}
