//! [`Setting`]: what the layers know about one row of the table in `settings.rs`, and how
//! errors name a key in all three places an operator may have set it.

use std::fmt;
use std::sync::LazyLock;

use clap::builder::ValueParser;
use clap::{Arg, ArgAction};
use serde::Serialize;

use super::values::FlagValue;
use super::Config;

/// Every setting, in the order of the rows (which is also `--help`'s order within a heading).
static SETTINGS: LazyLock<Vec<Setting>> = LazyLock::new(|| {
    let mut all = Vec::new();
    Config::describe(&mut all);
    all
});

/// The table, built once. `'static` because clap's argument names borrow from it.
pub fn settings() -> &'static [Setting] {
    &SETTINGS
}

/// `auth.mode` becomes "auth.mode (--auth-mode, SWITCHBOARD_AUTH_MODE)": errors name the key in
/// all three places an operator may have set it. A name that is not a key (a test checks that
/// the validation never passes one) is returned as it is.
pub fn key(name: &str) -> String {
    settings()
        .iter()
        .find(|setting| setting.key == name)
        .map_or_else(|| name.to_owned(), Setting::to_string)
}

/// One setting: its three names, its `--help` entry and how clap parses it.
#[derive(Debug)]
pub struct Setting {
    /// The file key, dotted inside a table (`limits.max_rooms`); also clap's argument id.
    pub key: &'static str,
    /// Without the leading `--`: the table's flag prefix and the key, `_` as `-`.
    pub flag: String,
    /// `SWITCHBOARD_` and the flag, upper case with `_`.
    pub env: String,
    help: String,
    value_name: &'static str,
    heading: &'static str,
    /// The default `--help` shows; none for an empty one (unset optional values, empty lists).
    pub default: Option<String>,
    list: bool,
    hide_env: bool,
    parser: ValueParser,
}

impl Setting {
    /// A row of the table; the flag (and with it the variable) is derived from `flag_stem`,
    /// which is the table's flag prefix and the key.
    pub fn new<T: FlagValue + Serialize>(
        key: &'static str,
        flag_stem: &str,
        doc: &str,
        value_name: &'static str,
        heading: &'static str,
        default: &T,
    ) -> Setting {
        let flag = flag_stem.replace('_', "-");
        Setting {
            key,
            env: env_name(&flag),
            flag,
            help: help_text(doc),
            value_name,
            heading,
            default: shown(default),
            list: T::LIST,
            hide_env: false,
            parser: T::parser(),
        }
    }

    /// Row option `flag("name")`: a flag the naming rule does not give (`--api-key` for
    /// `auth.keys`); the variable follows it.
    pub fn flag(mut self, flag: &str) -> Setting {
        flag.clone_into(&mut self.flag);
        self.env = env_name(flag);
        self
    }

    /// Row option `hide_env()`: `--help` never shows the variable's value (secrets).
    pub fn hide_env(mut self) -> Setting {
        self.hide_env = true;
        self
    }

    /// The clap argument: flag, variable, help and the default it shows.
    pub fn arg(&'static self) -> Arg {
        let mut arg = Arg::new(self.key)
            .long(self.flag.as_str())
            .env(self.env.as_str())
            .hide_env_values(self.hide_env)
            .value_name(self.value_name)
            .help(self.help.as_str())
            .help_heading(self.heading)
            .value_parser(self.parser.clone());
        if self.list {
            arg = arg.action(ArgAction::Append).value_delimiter(',');
        }
        if let Some(default) = &self.default {
            arg = arg.default_value(default.as_str());
        }
        arg
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (--{}, {})", self.key, self.flag, self.env)
    }
}

fn env_name(flag: &str) -> String {
    format!("SWITCHBOARD_{}", flag.replace('-', "_").to_uppercase())
}

/// A row's doc comment as one `--help` line, without the final period (as clap's derive does).
fn help_text(doc: &str) -> String {
    let text = doc
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match text.strip_suffix('.') {
        Some(sentence) => sentence.to_owned(),
        None => text,
    }
}

/// The default as a flag would give it, through the same serialisation `--print-config` uses:
/// `127.0.0.1:7880`, `30`, `dev`; a list comma-separated. Empty values have none.
fn shown(value: &impl Serialize) -> Option<String> {
    fn scalar(value: &toml::Value) -> Option<String> {
        match value {
            toml::Value::String(text) => Some(text.clone()),
            toml::Value::Integer(n) => Some(n.to_string()),
            toml::Value::Float(x) => Some(x.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            toml::Value::Datetime(t) => Some(t.to_string()),
            toml::Value::Array(_) | toml::Value::Table(_) => None,
        }
    }
    let text = match toml::Value::try_from(value).ok()? {
        toml::Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        other => scalar(&other)?,
    };
    Some(text).filter(|text| !text.is_empty())
}
