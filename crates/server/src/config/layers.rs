//! The layers: defaults, then the TOML file (`--config` / `SWITCHBOARD_CONFIG`), then
//! environment variables and flags, which clap reads together (a flag beats its variable).
//! Each layer overrides the ones before it key by key; what a layer does not name stays.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgAction, ArgMatches};

use super::setting::settings;
use super::values::FlagValue;
use super::{Command, Config, LoadError};

/// Argument ids of the two flags that are not settings.
const CONFIG: &str = "config";
const PRINT_CONFIG: &str = "print-config";

/// Read the command line (and the environment, and the config file it names) into a validated
/// [`Config`].
pub fn load<I, T>(args: I) -> Result<Command, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // An empty variable (`SWITCHBOARD_PUBLIC_IP=` in an environment file) counts as unset, as
    // it would in a shell script, rather than as an invalid value.
    let command = command().mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty());
        if empty {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    });
    load_with(command, args)
}

/// [`load`] with the command to parse with (tests take the environment out of it).
pub(super) fn load_with<I, T>(command: clap::Command, args: I) -> Result<Command, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command.try_get_matches_from(args).map_err(LoadError::Cli)?;
    let file = matches
        .try_get_one::<PathBuf>(CONFIG)
        .map_err(|e| format!("--config: {e}"))?;
    let mut config = match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.lay_flags(&matches)?;
    config.validate()?;
    let print = matches
        .try_get_one::<bool>(PRINT_CONFIG)
        .map_err(|e| format!("--print-config: {e}"))?;
    if print.copied().unwrap_or(false) {
        Ok(Command::Print(config.to_toml()))
    } else {
        Ok(Command::Run(Box::new(config)))
    }
}

/// The command line: `--config`, `--print-config`, and one argument per setting.
pub(super) fn command() -> clap::Command {
    let command = clap::Command::new("switchboard")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Switchboard WebRTC SFU media server")
        .after_help(
            "Settings come from defaults, then the --config file, then environment variables, \
             then flags; each overrides the ones before it. File keys are the flag names with \
             '_' (udp_ports; auth.mode in [auth]). See docs/operations.md.",
        )
        .arg(
            Arg::new(CONFIG)
                .long("config")
                .env("SWITCHBOARD_CONFIG")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help(
                    "TOML config file; its keys are overridden by environment variables and flags",
                ),
        )
        .arg(
            Arg::new(PRINT_CONFIG)
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the effective configuration as TOML and exit"),
        );
    settings()
        .iter()
        .fold(command, |command, setting| command.arg(setting.arg()))
}

/// The value came from a flag or a variable (not clap's displayed default).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// A flag or variable sets one of the keys of `table`.
pub(super) fn table_given(matches: &ArgMatches, table: &str) -> bool {
    settings().iter().any(|setting| {
        setting.key.split_once('.').map(|(t, _)| t) == Some(table) && given(matches, setting.key)
    })
}

/// The environment and flag layer for the setting `key`: what clap read replaces `target`, in
/// the way its type says. Nothing given, nothing changes.
pub(super) fn lay<T: FlagValue>(
    target: &mut T,
    matches: &ArgMatches,
    key: &'static str,
) -> Result<(), String> {
    if !given(matches, key) {
        return Ok(());
    }
    // The argument was made from the same row with `T::parser()`, so the types agree; a
    // mismatch is reported rather than trusted.
    let items: Vec<T::Item> = matches
        .try_get_many::<T::Item>(key)
        .map_err(|e| format!("{key}: {e}"))?
        .map(|values| values.cloned().collect())
        .unwrap_or_default();
    if items.is_empty() {
        return Ok(());
    }
    target.lay(items, key)
}

impl Config {
    /// Defaults overridden by the keys of the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config file {}:{e}", path.display()))
    }

    /// Defaults overridden by the keys of `text`: the generated structs take every key as
    /// optional and refuse unknown ones. Errors start with `line:column: `.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            format!("{line}:{column}: {}", e.message().trim_end())
        })
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}
