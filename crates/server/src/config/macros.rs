//! `settings!`, which turns the table in `settings.rs` (one row per setting) into everything the
//! layers need. A macro rather than descriptors over `toml::Value` trees: the rows stay typed, so
//! the file layer is plain serde (with toml's `line:column` errors and `deny_unknown_fields`), a
//! flag is parsed by clap into the field's own type, and a row that does not fit its type (or a
//! mapping in `Config::control` / `Config::runtime` that forgets a row) fails to compile instead
//! of failing at startup.

/// Generates, for the root struct and each table:
///
/// - the struct, one `pub` field per row, documented by the row's doc comment; `Serialize` for
///   `--print-config` (unset optional values left out) and `Deserialize` with every key optional
///   (`serde(default)`) and unknown keys refused (`deny_unknown_fields`): that is the file layer;
/// - `Default`, from the rows' default expressions;
/// - `describe`, which lists the rows as [`Setting`]s: key, flag and variable names, `--help`
///   text and heading, the default `--help` shows, and the clap argument;
/// - `lay_flags`, which lays what clap read from flags and variables over the struct (the
///   environment and flag layers; clap lets a flag beat its variable).
///
/// A row is `/// help text` then `key: Type = default, "VALUE_NAME" in HEADING[, option()]...;`.
/// The options are [`Setting`]'s builder methods: `flag("api-key")` when the flag is not the
/// derived one, `hide_env()` for secrets. A table is `[key] Struct, flags "prefix-" { rows }`, or
/// `[key] Option<Struct>, ...` for one that is absent until some layer sets one of its keys.
/// Tables do not nest.
///
/// [`Setting`]: super::setting::Setting
macro_rules! settings {
    (
        $(#[doc = $doc:literal])*
        pub struct $Root:ident { $($root:tt)* }
        $(
            $(#[doc = $table_doc:literal])*
            [$table:ident] $slot:ident $(<$inner:ident>)?, flags $prefix:literal {
                $($rows:tt)*
            }
        )*
    ) => {
        $crate::config::macros::settings! {
            @struct [$($doc)*] $Root, "", "" { $($root)* }
            { $( $table: $slot $(<$inner>)?, )* }
        }
        $(
            $crate::config::macros::settings! {
                @table [$($table_doc)*] [$table] $slot $(<$inner>)?, $prefix { $($rows)* }
            }
        )*
    };

    // A table that may be absent is declared as its inner struct (`Option<T>` is a `Table` too).
    (@table [$($doc:literal)*] [$table:ident] Option<$Table:ident>, $prefix:literal {
        $($rows:tt)*
    }) => {
        $crate::config::macros::settings! {
            @table [$($doc)*] [$table] $Table, $prefix { $($rows)* }
        }
    };
    (@table [$($doc:literal)*] [$table:ident] $Table:ident, $prefix:literal {
        $($rows:tt)*
    }) => {
        $crate::config::macros::settings! {
            @struct [$($doc)*] $Table, concat!(stringify!($table), "."), $prefix { $($rows)* } {}
        }
        impl $crate::config::values::Table for $Table {
            type Inner = $Table;
            fn open(&mut self) -> &mut $Table {
                self
            }
        }
    };

    // One struct: its rows, then (for the root) its tables.
    (@struct [$($doc:literal)*] $Name:ident, $path:expr, $prefix:literal {
        $(
            $(#[doc = $row_doc:literal])*
            $key:ident : $ty:ty = $default:expr, $value_name:literal in $heading:ident
                $(, $option:ident($($argument:literal)?))* ;
        )*
    } { $( $table:ident : $table_ty:ty, )* }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $Name {
            $(
                $(#[doc = $row_doc])*
                #[serde(skip_serializing_if = "crate::config::values::FlagValue::absent")]
                pub $key: $ty,
            )*
            $(
                #[serde(skip_serializing_if = "crate::config::values::Table::absent")]
                pub $table: $table_ty,
            )*
        }

        impl Default for $Name {
            fn default() -> Self {
                $Name {
                    $( $key: $default, )*
                    $( $table: Default::default(), )*
                }
            }
        }

        impl $Name {
            /// This struct's settings, then its tables', in the order of the rows.
            pub(super) fn describe(out: &mut Vec<$crate::config::setting::Setting>) {
                $({
                    let default: $ty = $default;
                    out.push(
                        $crate::config::setting::Setting::new(
                            concat!($path, stringify!($key)),
                            concat!($prefix, stringify!($key)),
                            concat!($($row_doc, "\n",)*),
                            $value_name,
                            $heading,
                            &default,
                        )
                        $( .$option($($argument)?) )*
                    );
                })*
                $( <$table_ty as $crate::config::values::Table>::Inner::describe(out); )*
            }

            /// The environment and flag layers: each value clap read from a flag or a variable
            /// replaces the one below it; an optional table opens when one of its keys is given.
            pub(super) fn lay_flags(&mut self, matches: &::clap::ArgMatches) -> Result<(), String> {
                $(
                    $crate::config::layers::lay(
                        &mut self.$key,
                        matches,
                        concat!($path, stringify!($key)),
                    )?;
                )*
                $(
                    if $crate::config::layers::table_given(matches, stringify!($table)) {
                        $crate::config::values::Table::open(&mut self.$table).lay_flags(matches)?;
                    }
                )*
                Ok(())
            }
        }
    };
}

pub(super) use settings;
