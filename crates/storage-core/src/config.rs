//! Configuration plumbing shared by every crate: TOML parsing with located errors,
//! environment lookup with named errors, durations, and the embedded backends' settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// Parse TOML `text` into `T`. Errors name `origin` (a file name), the line and the field
/// path (`strata.toml:3: routes.records.colour`).
///
/// A table deserialized as a whole (an internally tagged enum, a `try_from` type) reports
/// its errors at the table; when such an error's message starts with
/// [`field_message`]'s `` `key`: `` it is placed at that key's own line instead.
pub fn from_toml_str<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let mut where_ = origin.to_string();
        let mut message = e.message().trim().to_string();
        if let Some(span) = e.span() {
            let offset = span.start.min(text.len());
            let mut line = text[..offset].matches('\n').count() + 1;
            let mut path = toml_path_at(text, offset);
            if let Some((key, rest)) = split_field_message(&message)
                && let Some(table) = &path
                && let Some(found) = toml_line_of(text, &format!("{table}.{key}"))
            {
                path = Some(format!("{table}.{key}"));
                line = found;
                message = rest.to_string();
            }
            where_ = match path {
                Some(path) => format!("{origin}:{line}: {path}"),
                None => format!("{origin}:{line}"),
            };
        }
        StorageError::invalid_config(where_, message)
    })
}

/// An error message about `key` of a table checked as a whole: `` `key`: reason ``, which
/// [`from_toml_str`] turns into that key's line and field path.
pub fn field_message(key: &str, reason: impl std::fmt::Display) -> String {
    format!("`{key}`: {reason}")
}

fn split_field_message(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix('`')?;
    let (key, rest) = rest.split_once("`: ")?;
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some((key, rest))
}

/// The 1-based line of dotted `path` in TOML `text`: a `[table]` header or a `key = value`
/// line under the nearest header (dotted keys and inline tables not followed). `None` when
/// the path is not written there.
pub fn toml_line_of(text: &str, path: &str) -> Option<usize> {
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            table = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .split('.')
                .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
                .collect::<Vec<_>>()
                .join(".");
            if table == path {
                return Some(i + 1);
            }
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            let full = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            if full == path {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Place a validation error found after parsing (`InvalidConfig` whose field is
/// `"{origin}: a.b.c"`, or several paths joined by `/`, the most specific last) at the line
/// of `text` that sets it: `"{origin}:LINE: a.b.c"`. Other errors pass through.
pub fn locate_error(err: StorageError, text: &str, origin: &str) -> StorageError {
    let StorageError::InvalidConfig { field, reason } = err else {
        return err;
    };
    let Some(paths) = field
        .strip_prefix(origin)
        .and_then(|f| f.strip_prefix(": "))
    else {
        return StorageError::InvalidConfig { field, reason };
    };
    let found = paths.rsplit('/').find_map(|candidate| {
        // `buckets.media/connections.aws.secret_access_key`: the last names the setting;
        // `tenants.a` may be a table; `connections.aws.` a prefix with the key after it.
        // A setting that is missing, or sits in an inline table, is placed at the nearest
        // written table or key above it.
        let candidate = candidate.trim_end_matches('.');
        let mut at = candidate;
        loop {
            if let Some(line) = toml_line_of(text, at) {
                return Some((line, candidate));
            }
            at = at.rsplit_once('.')?.0;
        }
    });
    match found {
        Some((line, path)) => StorageError::InvalidConfig {
            field: format!("{origin}:{line}: {path}"),
            reason,
        },
        None => StorageError::InvalidConfig { field, reason },
    }
}

/// The dotted path (`table.key`) of the TOML line holding byte `offset`, found from the
/// nearest table header above it and the key on that line. Best effort: `None` when the
/// line has neither.
fn toml_path_at(text: &str, offset: usize) -> Option<String> {
    let offset = (0..=offset).rev().find(|i| text.is_char_boundary(*i))?;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        l.starts_with('[').then(|| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let table = text[..line_start].lines().rev().find_map(header);
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty());
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (Some(t), None) => Some(t),
        (None, k) => k,
    }
}

/// Where environment variables come from: the process, or a fixed map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<BTreeMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Env { fixed: None }
    }

    /// A fixed set of variables (for tests and for embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            fixed: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// A variable, treating empty as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.fixed {
            Some(m) => m.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.filter(|s| !s.trim().is_empty())
    }

    /// The first of several names that is set.
    pub fn first(&self, names: &[&str]) -> Option<(String, String)> {
        names
            .iter()
            .find_map(|n| self.get(n).map(|v| (n.to_string(), v)))
    }

    /// A required variable; missing is an `InvalidConfig` naming it.
    pub fn require(&self, name: &str) -> Result<String> {
        self.get(name).ok_or_else(|| {
            StorageError::invalid_config(name, "is not set; export it or use a config file")
        })
    }

    /// Parse a variable with `FromStr`; a bad value names the variable and the value.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|e| {
                StorageError::invalid_config(name, format!("cannot parse `{v}`: {e}"))
            }),
        }
    }

    /// Parse a boolean (`true/false/1/0/yes/no/on/off`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_bool(&v).map(Some).ok_or_else(|| {
                StorageError::invalid_config(
                    name,
                    format!("`{v}` is not a boolean; use true or false"),
                )
            }),
        }
    }

    /// Parse a duration: `30s`, `15m`, `1h`, `7d`; a bare number is `bare_unit`s.
    pub fn duration(&self, name: &str, bare_unit: Duration) -> Result<Option<Duration>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_duration_with_unit(&v, bare_unit)
                .map(Some)
                .map_err(|e| StorageError::invalid_config(name, e)),
        }
    }
}

/// Parse `true/false/1/0/yes/no/on/off`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parse a human duration (`250ms`, `30s`, `15m`, `1h`, `7d`, `1h30m`).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    humantime::parse_duration(s).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write a number and a unit, e.g. 30s, 15m, 1h, 7d")
    })
}

fn parse_duration_with_unit(s: &str, bare_unit: Duration) -> std::result::Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => Ok(bare_unit * u32::try_from(n).map_err(|_| format!("`{s}` is too large"))?),
        Err(_) => parse_duration(s),
    }
}

/// Deserialize a number that must be at least 1 (a threshold, a count, a size): 0 is
/// refused where it is read, so the error carries the line and field.
pub fn at_least_one<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + From<u8>,
{
    let v = T::deserialize(d)?;
    if v < T::from(1) {
        return Err(serde::de::Error::custom(
            "must be at least 1 (0 would make the setting do nothing or fail every call); remove it to use the default",
        ));
    }
    Ok(v)
}

/// Serde helpers for durations written as `"30s"` in TOML.
pub mod duration_str {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Deserialize `"30s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// Serialize as `"30s"`.
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }

    /// A duration that must be more than zero (a timeout, an interval): `"0s"` is refused
    /// where it is read, so the error carries the line and field.
    pub mod nonzero {
        use super::*;

        /// Deserialize `"30s"`, refusing zero.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Duration, D::Error> {
            let v = super::deserialize(d)?;
            if v.is_zero() {
                return Err(serde::de::Error::custom(ZERO));
            }
            Ok(v)
        }

        /// Serialize as `"30s"`.
        pub fn serialize<S: Serializer>(
            v: &Duration,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            super::serialize(v, s)
        }

        /// Same, for `Option<Duration>`.
        pub mod option {
            use super::*;

            /// Deserialize `"30s"` or absent, refusing zero.
            pub fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Option<Duration>, D::Error> {
                let v = super::super::option::deserialize(d)?;
                if v.is_some_and(|v| v.is_zero()) {
                    return Err(serde::de::Error::custom(ZERO));
                }
                Ok(v)
            }

            /// Serialize as `"30s"` or nothing.
            pub fn serialize<S: Serializer>(
                v: &Option<Duration>,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                super::super::option::serialize(v, s)
            }
        }

        const ZERO: &str = "must be more than zero (with 0s every call would time out or nothing would wait); write e.g. \"30s\", or remove it to use the default";
    }

    /// Same, for `Option<Duration>`.
    pub mod option {
        use super::*;

        /// Deserialize `"30s"` or absent.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Option<Duration>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
                .transpose()
        }

        /// Serialize as `"30s"` or nothing.
        pub fn serialize<S: Serializer>(
            v: &Option<Duration>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            match v {
                Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
                None => s.serialize_none(),
            }
        }
    }
}

/// Settings of the local-folder backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Folder holding the objects (created if missing).
    pub root: PathBuf,
}

/// Check a bucket name against S3's naming rules (3-63 chars, lowercase letters, digits,
/// `-` and `.`, starting and ending with a letter or digit).
pub fn validate_bucket_name(field: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(StorageError::invalid_config(
            field,
            format!(
                "bucket name `{}` {why}; S3 bucket names are 3-63 characters of a-z, 0-9, `-` and `.`, starting and ending with a letter or digit",
                name.escape_debug()
            ),
        ))
    };
    if name.len() < 3 || name.len() > 63 {
        return bad(&format!("has {} characters", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return bad(&format!("contains {c:?}"));
    }
    let first_last_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_last_ok(name.chars().next()) || !first_last_ok(name.chars().last()) {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("contains `..`");
    }
    Ok(())
}

/// Check a credential (access key id, secret, session token): not blank, and visible ASCII
/// only. Keys never hold spaces or line breaks (a trailing newline usually comes from reading
/// a key file), and a value that cannot travel in an HTTP header made `object_store`'s
/// signer panic on the first request.
pub fn validate_credential(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StorageError::invalid_config(
            field,
            "is empty; set the key (from your provider's console or its environment variable), or remove it",
        ));
    }
    if let Some(c) = value.chars().find(|c| !('!'..='~').contains(c)) {
        return Err(StorageError::invalid_config(
            field,
            format!(
                "contains {c:?}; credentials are ASCII letters, digits and symbols without spaces or line breaks (a trailing newline often comes from a key file: strip it)"
            ),
        ));
    }
    Ok(())
}

/// Check a logical name (of a bucket handle, connection, route): letters, digits, `-`, `_`.
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(StorageError::invalid_config(
            field,
            format!(
                "name `{}` must be 1-64 characters of letters, digits, `-` and `_`",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `text` (from file `origin`) fails to parse as a `T` with a message
    /// containing each of `needles`.
    fn assert_toml_error<T: DeserializeOwned + std::fmt::Debug>(
        text: &str,
        origin: &str,
        needles: &[&str],
    ) {
        let msg = from_toml_str::<T>(text, origin).unwrap_err().to_string();
        for needle in needles {
            assert!(msg.contains(needle), "`{needle}` not in: {msg}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        let env = Env::from_pairs([("STORAGE_TIMEOUT", "30000")]);
        assert_eq!(
            env.duration("STORAGE_TIMEOUT", Duration::from_millis(1))
                .unwrap(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn toml_errors_name_origin_and_field() {
        assert_toml_error::<FsConfig>(
            "root = '/x'\nextra = 1\n",
            "strata.toml",
            &["strata.toml:2", "extra"],
        );
        assert_toml_error::<BTreeMap<String, FsConfig>>(
            "[a]\nroot = '/x'\n\n[b]  # second\nroot = '/y'\ncolour = 'red'\n",
            "strata.toml",
            &["strata.toml:6: b.colour"],
        );
    }

    #[test]
    fn checked_values_and_tables_checked_whole_keep_line_and_field() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "only the errors are looked at")]
        struct Limits {
            #[serde(with = "duration_str::nonzero")]
            timeout: Duration,
            #[serde(deserialize_with = "at_least_one", default = "one")]
            threshold: u32,
        }
        fn one() -> u32 {
            1
        }
        assert_toml_error::<BTreeMap<String, Limits>>(
            "[a]\ntimeout = '1s'\n\n[b]\nthreshold = 2\ntimeout = '0s'\n",
            "x.toml",
            &["x.toml:6: b.timeout", "more than zero"],
        );
        assert_toml_error::<BTreeMap<String, Limits>>(
            "[a]\ntimeout = '1s'\nthreshold = 0\n",
            "x.toml",
            &["x.toml:3: a.threshold", "at least 1"],
        );

        // A table checked whole points at the key its message names.
        #[derive(Debug, Deserialize)]
        #[serde(try_from = "toml::Table")]
        struct Whole;
        impl TryFrom<toml::Table> for Whole {
            type Error = String;
            fn try_from(_: toml::Table) -> std::result::Result<Self, String> {
                Err(field_message("region", "invalid type: integer `30`"))
            }
        }
        assert_toml_error::<BTreeMap<String, Whole>>(
            "[conn]\nkind = 's3'\nregion = 30\n",
            "x.toml",
            &["`x.toml:3: conn.region`: invalid type: integer `30`"],
        );
    }

    #[test]
    fn errors_found_after_parsing_get_their_line() {
        let text = "[connections.aws]\nkind = 's3'\nsecret_access_key = ''\n[buckets.m]\nconnection = 'aws'\n";
        let e = locate_error(
            StorageError::invalid_config(
                "s.toml: buckets.m/connections.aws.secret_access_key",
                "is empty",
            ),
            text,
            "s.toml",
        );
        assert_eq!(
            e.to_string(),
            StorageError::invalid_config("s.toml:3: connections.aws.secret_access_key", "is empty")
                .to_string()
        );
        // Not written: the nearest table above it.
        let e = locate_error(
            StorageError::invalid_config(
                "s.toml: buckets.m/connections.aws.access_key_id",
                "is missing",
            ),
            text,
            "s.toml",
        );
        assert!(
            e.to_string()
                .contains("s.toml:1: connections.aws.access_key_id"),
            "{e}"
        );
        assert_eq!(toml_line_of(text, "buckets.m"), Some(4));
        assert_eq!(toml_line_of(text, "buckets.m.connection"), Some(5));
        assert_eq!(toml_line_of(text, "buckets.x"), None);
    }

    #[test]
    fn credentials_are_visible_ascii() {
        assert!(validate_credential("k", "AKIA/x+y=").is_ok());
        for (bad, says) in [
            ("", "is empty"),
            ("  ", "is empty"),
            ("AK\n", "'\\n'"),
            ("a b", "' '"),
            ("é", "'é'"),
        ] {
            let e = validate_credential("connections.c.secret_access_key", bad).unwrap_err();
            assert!(
                e.to_string().contains(says) && e.to_string().contains("secret_access_key"),
                "{e}"
            );
        }
    }

    #[test]
    fn bucket_names() {
        assert!(validate_bucket_name("b", "my-bucket.1").is_ok());
        for bad in ["ab", "My_Bucket", "-x-y", "a..b"] {
            assert!(validate_bucket_name("b", bad).is_err(), "{bad}");
        }
    }
}
