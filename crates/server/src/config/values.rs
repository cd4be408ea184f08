//! How a setting's type is read from a flag or variable and laid over the value below it
//! ([`FlagValue`]), the value types that exist only for the config ([`ApiKeyEntry`]), and how a
//! table that may be absent is opened ([`Table`]).
//!
//! A new setting of a type listed here needs nothing in this file; a new type needs one impl.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser, ValueParser};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};
use switchboard_control::{ApiKey, AuthMode};

use super::setting::key;

/// A type a setting can have.
pub trait FlagValue: Sized {
    /// What clap parses one value (one comma-separated item, for a list) into.
    type Item: Clone + Send + Sync + 'static;
    /// The value is a list: comma-separated, and the flag may be repeated.
    const LIST: bool = false;
    /// Parses one item; clap reports what it cannot parse (exit 2, with a usage hint).
    fn parser() -> ValueParser;
    /// Lays what a flag or variable gave (at least one item) over `self`. `name` is the key,
    /// for errors.
    fn lay(&mut self, items: Vec<Self::Item>, name: &str) -> Result<(), String>;
    /// `--print-config` leaves the key out: an optional value that is not set.
    fn absent(&self) -> bool {
        false
    }
}

/// Types clap parses by themselves; the value given replaces the one below.
macro_rules! scalars {
    ($($ty:ty),* $(,)?) => {$(
        impl FlagValue for $ty {
            type Item = $ty;
            fn parser() -> ValueParser {
                clap::value_parser!($ty).into()
            }
            fn lay(&mut self, items: Vec<$ty>, _: &str) -> Result<(), String> {
                replace(self, items);
                Ok(())
            }
        }
    )*};
}

/// A single value: the last one given wins (clap takes one flag; a variable gives one value).
fn replace<T>(target: &mut T, items: Vec<T>) {
    if let Some(value) = items.into_iter().last() {
        *target = value;
    }
}

scalars!(bool, u16, u32, u64, usize, SocketAddr, IpAddr, PathBuf);

/// Empty text counts as not given, as an empty variable does.
impl FlagValue for String {
    type Item = String;
    fn parser() -> ValueParser {
        ValueParser::string()
    }
    fn lay(&mut self, items: Vec<String>, _: &str) -> Result<(), String> {
        if let Some(text) = items.into_iter().last().filter(|text| !text.is_empty()) {
            *self = text;
        }
        Ok(())
    }
}

/// An optional value (no default): given, it is set.
impl<T> FlagValue for Option<T>
where
    T: FlagValue<Item = T> + Clone + Send + Sync + 'static,
{
    type Item = T;
    fn parser() -> ValueParser {
        T::parser()
    }
    fn lay(&mut self, items: Vec<T>, _: &str) -> Result<(), String> {
        if let Some(value) = items.into_iter().last() {
            *self = Some(value);
        }
        Ok(())
    }
    fn absent(&self) -> bool {
        self.is_none()
    }
}

/// A list of text (URLs): items are trimmed and blank ones dropped; what is left, if anything,
/// replaces the file's list (`--webhook-urls ""` means "not set").
impl FlagValue for Vec<String> {
    type Item = String;
    const LIST: bool = true;
    fn parser() -> ValueParser {
        ValueParser::string()
    }
    fn lay(&mut self, items: Vec<String>, _: &str) -> Result<(), String> {
        let items: Vec<String> = items
            .iter()
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect();
        if !items.is_empty() {
            *self = items;
        }
        Ok(())
    }
}

impl FlagValue for AuthMode {
    type Item = AuthMode;
    fn parser() -> ValueParser {
        serde_names::<AuthMode>([
            PossibleValue::new("dev").help(
                "Joins without a credential are admitted; for trying Switchboard on one machine",
            ),
            PossibleValue::new("required").help("Every join needs a valid credential"),
        ])
    }
    fn lay(&mut self, items: Vec<AuthMode>, _: &str) -> Result<(), String> {
        replace(self, items);
        Ok(())
    }
}

/// A unit enum read by the names it has in the file (its serde names), which `--help` lists with
/// their help. A name here that serde does not know is refused when given (a test tries them).
fn serde_names<T>(names: impl IntoIterator<Item = PossibleValue>) -> ValueParser
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names)
        .try_map(|name| {
            T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(name))
        })
        .into()
}

/// One `[[auth.keys]]` entry. The server's own type rather than [`ApiKey`] so that the file
/// refuses unknown keys in it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub id: String,
    pub secret: String,
}

impl ApiKeyEntry {
    /// `ID:SECRET`; the secret may contain `:`.
    fn parse(text: &str, name: &str) -> Result<ApiKeyEntry, String> {
        match text.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(ApiKeyEntry {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => {
                let id = text.split(':').next().unwrap_or_default();
                Err(format!(
                    "{}: expected ID:SECRET, got {id:?} without a secret",
                    key(name)
                ))
            }
        }
    }

    pub fn to_api_key(&self) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// `ID:SECRET` items, comma-separated or repeated; empty ones are dropped and the rest replace
/// the file's keys. Parsed here rather than by clap so that a bad one is a one-line error that
/// names the key, like the other invalid settings.
impl FlagValue for Vec<ApiKeyEntry> {
    type Item = String;
    const LIST: bool = true;
    fn parser() -> ValueParser {
        ValueParser::string()
    }
    fn lay(&mut self, items: Vec<String>, name: &str) -> Result<(), String> {
        let keys = items
            .iter()
            .filter(|item| !item.is_empty())
            .map(|item| ApiKeyEntry::parse(item, name))
            .collect::<Result<Vec<_>, _>>()?;
        if !keys.is_empty() {
            *self = keys;
        }
        Ok(())
    }
}

/// A field of the root struct that holds a table.
pub trait Table {
    type Inner;
    /// The table, made from its defaults first when it is absent.
    fn open(&mut self) -> &mut Self::Inner;
    /// `--print-config` leaves the table out.
    fn absent(&self) -> bool {
        false
    }
}

/// A table that is absent until some layer sets one of its keys (`[admission]`).
impl<T: Default> Table for Option<T> {
    type Inner = T;
    fn open(&mut self) -> &mut T {
        self.get_or_insert_with(T::default)
    }
    fn absent(&self) -> bool {
        self.is_none()
    }
}
