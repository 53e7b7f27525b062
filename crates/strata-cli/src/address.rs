//! rclone-style addresses: `NAME:KEY` is remote, anything else a local path.

use std::path::PathBuf;

use crate::output::{CliError, CliResult};

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `NAME:KEY` (KEY may be empty: the whole bucket).
    Remote {
        /// Bucket name.
        bucket: String,
        /// Key or prefix.
        key: String,
    },
    /// A local file or folder.
    Local(PathBuf),
}

impl Address {
    /// Parse `s`. `NAME` is letters, digits, `-` and `_` and comes before the first `:`;
    /// a `/` before any `:` (as in `./a:b`) makes it a local path.
    pub fn parse(s: &str) -> Address {
        if let Some((name, key)) = s.split_once(':')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Address::Remote {
                bucket: name.to_string(),
                key: key.to_string(),
            };
        }
        Address::Local(PathBuf::from(s))
    }

    /// Parse and require a remote address with a key.
    pub fn remote_key(s: &str) -> CliResult<(String, String)> {
        match Address::parse(s) {
            Address::Remote { bucket, key } if !key.is_empty() => Ok((bucket, key)),
            Address::Remote { bucket, .. } => Err(CliError::bad_input(format!(
                "`{s}` names bucket `{bucket}` but no key; write NAME:KEY, e.g. {bucket}:path/file.txt"
            ))),
            Address::Local(_) => Err(CliError::bad_input(format!(
                "`{s}` is not a remote address; write NAME:KEY, e.g. photos:2026/cat.jpg"
            ))),
        }
    }

    /// Parse and require a remote address (key may be empty).
    pub fn remote(s: &str) -> CliResult<(String, String)> {
        match Address::parse(s) {
            Address::Remote { bucket, key } => Ok((bucket, key)),
            Address::Local(_) => Err(CliError::bad_input(format!(
                "`{s}` is not a remote address; write NAME: or NAME:PREFIX, e.g. photos:2026/"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            Address::parse("photos:a/b.jpg"),
            Address::Remote {
                bucket: "photos".into(),
                key: "a/b.jpg".into()
            }
        );
        assert_eq!(
            Address::parse("photos:"),
            Address::Remote {
                bucket: "photos".into(),
                key: String::new()
            }
        );
        assert_eq!(Address::parse("./a:b"), Address::Local("./a:b".into()));
        assert_eq!(Address::parse("/tmp/x"), Address::Local("/tmp/x".into()));
        assert!(Address::remote_key("photos:").is_err());
    }
}
