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
    /// a `/` before any `:` (as in `./a:b`) makes it a local path, and so does a drive
    /// letter (`C:\x`, `d:/x`): a one-letter NAME whose key starts with a slash, which no
    /// valid key does.
    pub fn parse(s: &str) -> Address {
        if let Some((name, key)) = s.split_once(':')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !(name.len() == 1 && key.starts_with(['\\', '/']))
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
        for drive in ["C:\\x", "c:/x", "D:\\", "Z:/a:b"] {
            assert_eq!(
                Address::parse(drive),
                Address::Local(drive.into()),
                "{drive}"
            );
        }
        // A one-letter bucket name still works with a key.
        assert_eq!(
            Address::parse("c:x/y"),
            Address::Remote {
                bucket: "c".into(),
                key: "x/y".into()
            }
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            let pieces = prop::sample::select(vec![
                "a", "Z", "9", "-", "_", ":", "/", "\\", ".", "..", " ", "C:", "\n", "é", "~",
            ]);
            prop::collection::vec(pieces, 0..10).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Any text parses (no panic); a remote address is exactly `NAME:KEY` again, with
            /// a NAME of the allowed characters, and never a drive letter or a `/` path.
            #[test]
            fn remote_addresses_round_trip(s in text()) {
                match Address::parse(&s) {
                    Address::Remote { bucket, key } => {
                        prop_assert_eq!(format!("{bucket}:{key}"), s.clone());
                        prop_assert!(!bucket.is_empty());
                        prop_assert!(bucket.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                        prop_assert!(!(bucket.len() == 1 && key.starts_with(['\\', '/'])));
                    }
                    Address::Local(p) => prop_assert_eq!(p, PathBuf::from(&s)),
                }
                let _ = Address::remote_key(&s);
                let _ = Address::remote(&s);
            }

            /// A drive-letter path is always local, whatever follows it.
            #[test]
            fn drive_letters_are_local_paths(letter in "[A-Za-z]", sep in "[/\\\\]", rest in text()) {
                let s = format!("{letter}:{sep}{rest}");
                prop_assert_eq!(Address::parse(&s), Address::Local(PathBuf::from(&s)));
            }

            /// Every valid NAME with a key that does not start with a slash is remote.
            #[test]
            fn names_with_keys_are_remote(name in "[a-z0-9_-]{2,12}", key in text()) {
                let s = format!("{name}:{key}");
                prop_assert_eq!(Address::parse(&s), Address::Remote { bucket: name, key });
            }
        }
    }
}
