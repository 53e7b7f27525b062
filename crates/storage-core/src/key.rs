//! Validated object keys.

use std::fmt;

use object_store::path::Path;

use crate::bucket::Bucket;
use crate::error::{Result, StorageError};

/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Folder the local-folder backend keeps its own files in; keys may not start with it.
pub const RESERVED_PREFIX: &str = ".strata-sys";

/// A validated object key such as `records/users/42/head.json`.
///
/// Rules (each violation is an [`StorageError::InvalidKey`] naming the key and the rule):
/// not empty; at most 1024 bytes; no leading `/`; no empty segment (`a//b`) except a single
/// trailing `/` for "folder marker" keys; no `.` or `..` segment; no control characters;
/// not under the reserved `.strata-sys/` folder.
///
/// ```
/// use storage_core::Key;
/// let key = Key::new("reports/2026/q1.csv")?;
/// assert_eq!(key.as_str(), "reports/2026/q1.csv");
/// assert!(Key::new("../etc/passwd").is_err());
/// // Joining can never escape the prefix: the suffix is validated too.
/// assert!(Key::new("tenant-a")?.join("../tenant-b/x").is_err());
/// # Ok::<(), storage_core::StorageError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Validate `key`.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        validate(&key)?;
        Ok(Key(key))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/suffix`, validating the suffix on its own so it cannot climb out with `..`.
    pub fn join(&self, suffix: &str) -> Result<Key> {
        validate(suffix)?;
        let base = self.0.trim_end_matches('/');
        Key::new(format!("{base}/{suffix}"))
    }

    /// The `object_store` path for this key.
    pub fn to_path(&self) -> Path {
        path_of_valid(&self.0)
    }

    /// Validate `key` and give its `object_store` path, without keeping a `Key` (the hot
    /// path of every `Bucket` call: one allocation instead of three).
    pub(crate) fn store_path(key: &str) -> Result<Path> {
        // Most keys are plain: then `Path::parse`, which rejects empty, `.` and `..`
        // segments and control characters itself, makes the segment walk of `scan_ascii`
        // redundant. A plain key it rejects takes the full check, which names the rule.
        if is_plain_candidate(key.as_bytes())
            && let Ok(path) = Path::parse(key)
        {
            return Ok(path);
        }
        validate(key)?;
        Ok(path_of_valid(key))
    }

    /// Parse a path coming back from a store into a key (no validation: it already exists).
    pub fn from_path(path: &Path) -> Key {
        Key(path.as_ref().to_string())
    }

    /// Everything after the last `/`.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// How strictly a handle checks the keys it is given, on top of the rules of [`Key`].
///
/// ```
/// use storage_core::KeyPolicy;
/// assert!(KeyPolicy::Standard.check("a%2F..%2Fb").is_ok());
/// assert!(KeyPolicy::Strict.check("a%2F..%2Fb").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyPolicy {
    /// The rules of [`Key`] alone.
    #[default]
    Standard,
    /// Also refuse keys that only look harmless: backslashes and percent-encoded
    /// separators or dots (`%2F`, `%5C`, `%2E`), which a layer in front (a proxy, a web
    /// framework) might decode into a path outside the scope. Tenants use it.
    Strict,
}

impl KeyPolicy {
    /// Check `key` against what this policy adds to the rules of [`Key`].
    pub fn check(self, key: &str) -> Result<()> {
        match self {
            KeyPolicy::Standard => Ok(()),
            KeyPolicy::Strict => match disguised_separator(key) {
                None => Ok(()),
                Some(what) => Err(StorageError::InvalidKey {
                    key: key.escape_debug().to_string(),
                    rule: format!(
                        "a scoped key may not contain {what}: it could be decoded into a path outside the scope"
                    ),
                }),
            },
        }
    }
}

fn disguised_separator(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    if key.contains('\\') {
        Some("`\\`")
    } else if lower.contains("%2f") {
        Some("`%2F` (an encoded `/`)")
    } else if lower.contains("%5c") {
        Some("`%5C` (an encoded `\\`)")
    } else if lower.contains("%2e") {
        Some("`%2E` (an encoded `.`)")
    } else {
        None
    }
}

/// A key argument of a [`Bucket`] call: text, checked on use, or a [`Key`], checked
/// already (it is not validated again).
pub trait AsKey {
    /// The key as text.
    fn key_text(&self) -> &str;
    /// The key, when it is one already.
    fn as_validated(&self) -> Option<&Key> {
        None
    }
}

impl AsKey for str {
    fn key_text(&self) -> &str {
        self
    }
}

impl AsKey for String {
    fn key_text(&self) -> &str {
        self
    }
}

impl AsKey for std::borrow::Cow<'_, str> {
    fn key_text(&self) -> &str {
        self
    }
}

impl AsKey for std::sync::Arc<str> {
    fn key_text(&self) -> &str {
        self
    }
}

impl AsKey for Key {
    fn key_text(&self) -> &str {
        &self.0
    }
    fn as_validated(&self) -> Option<&Key> {
        Some(self)
    }
}

impl<T: AsKey + ?Sized> AsKey for &T {
    fn key_text(&self) -> &str {
        (**self).key_text()
    }
    fn as_validated(&self) -> Option<&Key> {
        (**self).as_validated()
    }
}

impl Key {
    /// Check `key` under `policy` and give its store path; a [`Key`] is not validated
    /// again (only the policy's extra rules run).
    pub(crate) fn path_under(key: &(impl AsKey + ?Sized), policy: KeyPolicy) -> Result<Path> {
        policy.check(key.key_text())?;
        match key.as_validated() {
            Some(k) => Ok(k.to_path()),
            None => Key::store_path(key.key_text()),
        }
    }

    /// Check `key` under `policy` and make it a [`Key`] (a [`Key`] is cloned as it is).
    pub(crate) fn under(key: &(impl AsKey + ?Sized), policy: KeyPolicy) -> Result<Key> {
        policy.check(key.key_text())?;
        match key.as_validated() {
            Some(k) => Ok(k.clone()),
            None => Key::new(key.key_text()),
        }
    }
}

impl Key {
    /// Validate the source and destination keys of a copy or move within one bucket, and
    /// refuse a key onto itself: a move would copy the object over itself and then delete
    /// it. `operation` (`copy`, `move`) names the call in the error.
    pub fn source_and_destination(from: &str, to: &str, operation: &str) -> Result<(Key, Key)> {
        Key::distinct(Key::new(from)?, Key::new(to)?, operation)
    }

    /// `(from, to)`, unless they are one key.
    fn distinct(from: Key, to: Key, operation: &str) -> Result<(Key, Key)> {
        if from == to {
            return Err(same_object(operation, from.as_str()));
        }
        Ok((from, to))
    }
}

#[cold]
fn same_object(operation: &str, key: &str) -> StorageError {
    StorageError::invalid_input(
        "destination",
        format!(
            "`{}` is both the source and the destination of this {operation}; a {operation} onto itself would {}. Give a different destination",
            key.escape_debug(),
            if operation == "move" {
                "delete the object it has just written"
            } else {
                "change nothing"
            }
        ),
    )
}

/// Identity of stored keys across handles.
///
/// Two [`Bucket`] handles can name the same storage: two names for one S3 bucket, two local
/// buckets whose folders nest, a bucket and a route or tenant view of it. Each handle knows
/// its [`location`](Bucket::location) (`file:///canonical/folder`, `s3://endpoint/bucket`,
/// `memory:...`) and its [`prefix`](Bucket::prefix); a key's identity is the location
/// joined with the full key, compared segment by segment. So `a:sub/x` and `b:x` are the
/// same object when `b`'s folder is `a`'s `sub` folder.
impl Bucket {
    /// Where `key` (or prefix) of this handle is stored, as `LOCATION/FULL/KEY`; a prefix
    /// given as `""` is the handle's whole scope.
    pub fn stored_at(&self, key: &str) -> String {
        let mut at = self.location().trim_end_matches('/').to_string();
        at.push('/');
        if let Some(p) = self.prefix() {
            at.push_str(p.as_str().trim_end_matches('/'));
            at.push('/');
        }
        at.push_str(key);
        at
    }

    /// Whether `key` of this handle and `other_key` of `other` are one stored object.
    pub fn is_same_object(&self, key: &str, other: &Bucket, other_key: &str) -> bool {
        self.stored_at(key) == other.stored_at(other_key)
    }

    /// Whether everything under `prefix` of this handle and under `other_prefix` of `other`
    /// can share objects: one scope contains the other (`""` is the whole handle). A
    /// recursive copy or move between overlapping scopes would read what it writes.
    pub fn scopes_overlap(&self, prefix: &str, other: &Bucket, other_prefix: &str) -> bool {
        let scope = |b: &Bucket, p: &str| {
            let at = b.stored_at(p.trim_end_matches('/'));
            format!("{}/", at.trim_end_matches('/'))
        };
        let (a, b) = (scope(self, prefix), scope(other, other_prefix));
        a.starts_with(&b) || b.starts_with(&a)
    }

    /// Check the two keys of a copy or move within this handle (under its key policy), and
    /// refuse a key onto itself.
    pub(crate) fn source_and_destination(
        &self,
        from: &(impl AsKey + ?Sized),
        to: &(impl AsKey + ?Sized),
        operation: &str,
    ) -> Result<(Key, Key)> {
        Key::distinct(self.check_key(from)?, self.check_key(to)?, operation)
    }

    /// Refuse a copy or move of `from` onto itself, whichever handles name the two ends.
    pub fn check_not_same_object(
        &self,
        from: &str,
        other: &Bucket,
        to: &str,
        operation: &str,
    ) -> Result<()> {
        if self.is_same_object(from, other, to) {
            return Err(same_object(operation, &self.stored_at(from)));
        }
        Ok(())
    }
}

/// Whether `object_store`'s `Path` keeps byte `b` as it is: printable ASCII outside the
/// set its path parts percent-encode.
const fn is_plain(b: u8) -> bool {
    matches!(b, b' '..=b'}')
        && !matches!(
            b,
            b'\\'
                | b'{'
                | b'^'
                | b'}'
                | b'%'
                | b'`'
                | b']'
                | b'"'
                | b'>'
                | b'['
                | b'<'
                | b'#'
                | b'|'
                | b'*'
                | b'?'
        )
}

// What `scan_ascii` needs to know of each byte, looked up in one table instead of tested
// byte by byte: the scan runs on every `Bucket` call.
const NOT_PRINTABLE: u8 = 1;
const NOT_PLAIN: u8 = 2;
const SLASH: u8 = 4;
const DOT: u8 = 8;

static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b < 0x20 || b >= 0x7f {
            NOT_PRINTABLE
        } else if b == b'/' {
            SLASH
        } else if b == b'.' {
            DOT
        } else if !is_plain(b) {
            NOT_PLAIN
        } else {
            0
        };
        i += 1;
    }
    table
};

/// The path of an already validated key. Keys of plain characters become the path as they
/// are (`Path::parse`: one pass, one allocation); others go through `Path::from_iter`, which
/// percent-encodes what `object_store` reserves, exactly as before.
fn path_of_valid(key: &str) -> Path {
    if key.bytes().all(is_plain)
        && let Ok(path) = Path::parse(key)
    {
        return path;
    }
    Path::from_iter(key.split('/').filter(|s| !s.is_empty()))
}

/// Whether `b` passes every rule that `Path::parse` does not check for a plain key:
/// length, no leading `/`, only plain printable bytes, not under [`RESERVED_PREFIX`].
/// `Path::parse` accepting it then proves the segment rules (it strips at most one
/// trailing `/`, as a folder marker may have, and rejects every other empty segment).
fn is_plain_candidate(b: &[u8]) -> bool {
    byte_classes(b).is_some_and(|classes| classes & (NOT_PRINTABLE | NOT_PLAIN) == 0)
}

/// The [`BYTE_CLASS`] bits of every byte of `b`, or `None` when `b` breaks a rule that needs
/// no look at its segments: empty, longer than [`MAX_KEY_BYTES`], a leading `/`, or under
/// [`RESERVED_PREFIX`].
fn byte_classes(b: &[u8]) -> Option<u8> {
    let reserved = RESERVED_PREFIX.as_bytes();
    if b.is_empty()
        || b.len() > MAX_KEY_BYTES
        || b[0] == b'/'
        || (b.starts_with(reserved) && b.get(reserved.len()).is_none_or(|&c| c == b'/'))
    {
        return None;
    }
    Some(b.iter().fold(0, |seen, &c| seen | BYTE_CLASS[c as usize]))
}

/// One pass over an ASCII key that breaks no rule: `Some(plain)`, where `plain` says every
/// byte is kept as it is by `Path`. `None` when the key is not ASCII or breaks a rule; then
/// [`validate`] decides and names the rule.
fn scan_ascii(b: &[u8]) -> Option<bool> {
    let classes = byte_classes(b)?;
    if classes & NOT_PRINTABLE != 0 {
        return None;
    }
    // Segments need a look only when there can be an empty, `.` or `..` one.
    if classes & (SLASH | DOT) != 0 {
        let mut segments = b.split(|&c| c == b'/');
        // The last segment may be empty: the one trailing `/` a folder marker may have.
        let last = segments.next_back().unwrap_or_default();
        if matches!(last, b"." | b"..") || segments.any(|s| matches!(s, b"" | b"." | b"..")) {
            return None;
        }
    }
    Some(classes & NOT_PLAIN == 0)
}

#[cold]
#[inline(never)]
fn invalid(key: &str, rule: impl Into<String>) -> StorageError {
    StorageError::InvalidKey {
        key: key.escape_debug().to_string(),
        rule: rule.into(),
    }
}

fn validate(key: &str) -> Result<()> {
    if scan_ascii(key.as_bytes()).is_some() {
        return Ok(());
    }
    validate_rule_by_rule(key)
}

/// The full check, slower than [`scan_ascii`] but naming the rule a key breaks.
fn validate_rule_by_rule(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(
            key,
            "a key may not be empty; give a name such as `folder/file.txt`",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            &format!("{}…", &key[..key.floor_char_boundary(40)]),
            format!(
                "a key may be at most {MAX_KEY_BYTES} bytes, this one is {} bytes; shorten it",
                key.len()
            ),
        ));
    }
    if key.starts_with('/') {
        return Err(invalid(
            key,
            "a key may not start with `/`; drop the leading slash",
        ));
    }
    // ASCII keys (the common case) are checked byte by byte; others char by char, which
    // also catches the C1 control characters.
    let has_control = if key.is_ascii() {
        key.bytes().any(|b| b.is_ascii_control())
    } else {
        key.chars().any(char::is_control)
    };
    if has_control && let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(invalid(
            key,
            format!("a key may not contain control characters (found {c:?}); remove it"),
        ));
    }
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    for segment in trimmed.split('/') {
        match segment {
            "" => {
                return Err(invalid(
                    key,
                    "a key may not contain an empty segment (`//`); remove the doubled `/`",
                ));
            }
            "." | ".." => {
                return Err(invalid(
                    key,
                    format!(
                        "a key may not contain a `{segment}` segment; keys are not relative paths, write the whole key from the bucket's root"
                    ),
                ));
            }
            _ => {}
        }
    }
    if trimmed
        .strip_prefix(RESERVED_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        return Err(invalid(
            key,
            format!(
                "keys under `{RESERVED_PREFIX}/` are reserved for Strata's own bookkeeping; use another folder name"
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = StorageError;
    fn try_from(value: &str) -> Result<Self> {
        Key::new(value)
    }
}

impl TryFrom<String> for Key {
    type Error = StorageError;
    fn try_from(value: String) -> Result<Self> {
        Key::new(value)
    }
}

impl From<Key> for Path {
    fn from(key: Key) -> Path {
        key.to_path()
    }
}

/// Validate an optional listing prefix: empty means "everything".
pub fn prefix_path(prefix: &str) -> Result<Option<Path>> {
    if prefix.is_empty() {
        return Ok(None);
    }
    Ok(Some(Key::new(prefix)?.to_path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "a/b/c.json", "folder/", "with space/ü.txt", "x-y_z.1"] {
            Key::new(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn rejects_with_named_rule() {
        let cases = [
            ("", "empty"),
            ("/abs", "start with `/`"),
            ("a//b", "empty segment"),
            ("a/../b", "`..`"),
            ("./a", "`.`"),
            ("a\nb", "control"),
            (".strata-sys/locks", "reserved"),
        ];
        for (k, needle) in cases {
            let err = Key::new(k).unwrap_err().to_string();
            assert!(err.contains(needle), "{k:?}: {err}");
        }
        let long = "k".repeat(1025);
        assert!(Key::new(long).unwrap_err().to_string().contains("1024"));
    }

    #[test]
    fn join_cannot_escape() {
        let base = Key::new("tenants/a").unwrap();
        assert_eq!(base.join("x/y").unwrap().as_str(), "tenants/a/x/y");
        assert!(base.join("../b/x").is_err());
        assert!(base.join("/etc").is_err());
    }

    #[test]
    fn paths_match_object_store_encoding() {
        for k in [
            "a/b/c.json",
            "folder/",
            "with space/ü.txt",
            "odd%name#1/[x]{y}|z*?~",
            "a-b_c.d(e)!'@$&=+,;:",
        ] {
            let want = Path::from_iter(k.split('/').filter(|s| !s.is_empty()));
            assert_eq!(Key::new(k).unwrap().to_path(), want, "{k}");
            assert_eq!(Key::store_path(k).unwrap(), want, "{k}");
        }
        assert!(Key::store_path("a/../b").is_err());
        for bad in [
            "",
            "/a",
            "a//b",
            "a/./b",
            "a/..",
            ".strata-sys",
            ".strata-sys/x",
            "a\tb",
        ] {
            assert!(scan_ascii(bad.as_bytes()).is_none(), "{bad:?}");
            assert!(Key::store_path(bad).is_err(), "{bad:?}");
        }
        for good in ["a/", ".strata-sysx/y", "a.b/..c/d..", "x y"] {
            assert!(scan_ascii(good.as_bytes()).is_some(), "{good:?}");
        }
    }

    #[test]
    fn fast_scan_agrees_with_the_full_check() {
        // Every key of up to 5 characters over an alphabet that hits each rule.
        let alphabet = ["a", ".", "/", "\t", "%", " ", "\u{7f}", "é"];
        let mut keys = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..5 {
            frontier = frontier
                .iter()
                .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
                .collect();
            keys.extend(frontier.iter().cloned());
        }
        keys.extend(
            [
                ".strata-sys",
                ".strata-sys/",
                ".strata-sys/a",
                ".strata-sysa",
            ]
            .map(String::from),
        );
        for k in &keys {
            let full = validate_rule_by_rule(k).is_ok();
            match scan_ascii(k.as_bytes()) {
                Some(plain) => {
                    assert!(full, "fast scan passed {k:?}, the full check rejects it");
                    assert_eq!(plain, k.bytes().all(is_plain), "{k:?}");
                }
                None => assert!(!full || !k.is_ascii(), "fast scan rejected valid {k:?}"),
            }
            // The plain-key shortcut of `store_path` must agree too, path included.
            if is_plain_candidate(k.as_bytes())
                && let Ok(path) = Path::parse(k)
            {
                assert!(
                    full,
                    "plain shortcut passed {k:?}, the full check rejects it"
                );
                assert_eq!(path, path_of_valid(k), "{k:?}");
            }
            match Key::store_path(k) {
                Ok(path) => {
                    assert!(full, "store_path passed {k:?}");
                    assert_eq!(path, path_of_valid(k), "{k:?}");
                }
                Err(_) => assert!(!full, "store_path rejected valid {k:?}"),
            }
        }
    }

    #[test]
    fn a_copy_or_move_onto_itself_is_refused() {
        let e = Key::source_and_destination("a/b", "a/b", "move").unwrap_err();
        assert!(
            matches!(&e, StorageError::InvalidInput { field, .. } if field == "destination"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("`a/b` is both the source and the destination"),
            "{e}"
        );
        assert!(e.to_string().contains("delete the object"), "{e}");
        assert!(Key::source_and_destination("a/b", "a/c", "copy").is_ok());
        assert!(Key::source_and_destination("a/../b", "c", "copy").is_err());
    }

    #[tokio::test]
    async fn bucket_copy_and_rename_onto_the_same_key_keep_the_object() {
        let dir = tempfile::tempdir().unwrap();
        for b in [Bucket::memory("m"), Bucket::local("l", dir.path()).unwrap()] {
            b.put("k", "v").await.unwrap();
            for r in [
                b.rename("k", "k").await,
                b.copy("k", "k").await,
                b.copy_if_absent("k", "k").await,
            ] {
                let e = r.unwrap_err();
                assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
            }
            assert_eq!(b.get("k").await.unwrap().bytes, "v");
        }
    }

    #[test]
    fn handles_on_nested_folders_name_the_same_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let outer = Bucket::local("outer", dir.path()).unwrap();
        // The same folder reached through `..`: canonicalised to one location.
        let inner = Bucket::local("inner", dir.path().join("sub/../sub")).unwrap();
        assert!(outer.is_same_object("sub/x", &inner, "x"));
        assert!(!outer.is_same_object("sub/x", &inner, "sub/x"));
        assert!(outer.scopes_overlap("", &inner, "y/"));
        assert!(outer.scopes_overlap("sub/", &inner, ""));
        assert!(!outer.scopes_overlap("other", &inner, ""));
        // Segments, not characters: `sub` does not contain `subway`.
        assert!(!outer.scopes_overlap("subway", &outer, "sub"));
        let prefixed = outer.to_builder().prefix("sub").unwrap().build();
        assert!(prefixed.is_same_object("x", &inner, "x"));
        let e = prefixed
            .check_not_same_object("x", &inner, "x", "move")
            .unwrap_err();
        assert!(e.to_string().contains("/sub/x"), "{e}");
        // Separate memory stores are separate even under one name.
        assert!(!Bucket::memory("m").is_same_object("k", &Bucket::memory("m"), "k"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Strings over the characters that break key rules, with the odd long one.
        fn hostile() -> impl Strategy<Value = String> {
            let pieces = prop::sample::select(vec![
                "a",
                "b",
                "/",
                ".",
                "..",
                "\\",
                "%2F",
                "%2E",
                "%5C",
                "\n",
                "\r",
                "\0",
                " ",
                "\u{7f}",
                "\u{85}",
                "\u{202e}",
                "é",
                ":",
                "C:",
                ".strata-sys",
                "~",
                "?",
            ]);
            prop_oneof![
                prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat()),
                (1000usize..1100).prop_map(|n| "k".repeat(n)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the string, validation answers (never panics), the fast path agrees
            /// with the named rules, and an accepted key keeps every rule.
            #[test]
            fn a_valid_key_keeps_every_rule(k in hostile()) {
                let checked = Key::new(k.as_str());
                prop_assert_eq!(checked.is_ok(), Key::store_path(&k).is_ok());
                prop_assert_eq!(checked.is_ok(), validate_rule_by_rule(&k).is_ok());
                if let Ok(key) = checked {
                    let s = key.as_str();
                    prop_assert!(!s.is_empty() && s.len() <= MAX_KEY_BYTES);
                    prop_assert!(!s.starts_with('/') && !s.chars().any(char::is_control));
                    let segments: Vec<&str> = s.strip_suffix('/').unwrap_or(s).split('/').collect();
                    prop_assert!(segments.iter().all(|seg| !matches!(*seg, "" | "." | "..")));
                    prop_assert!(segments[0] != RESERVED_PREFIX);

                }
                let _ = prefix_path(&k);
            }

            /// A key joined to a prefix stays under it, segment for segment.
            #[test]
            fn nothing_joined_escapes_its_prefix(prefix in "[a-z]{1,3}(/[a-z]{1,3}){0,2}", k in hostile()) {
                let base = Key::new(prefix.as_str()).unwrap();
                if let Ok(joined) = base.join(&k) {
                    prop_assert!(joined.as_str().starts_with(&format!("{prefix}/")), "{}", joined);
                    prop_assert_eq!(&joined.as_str()[prefix.len() + 1..], k.as_str());
                }
            }

            /// Through a prefixed handle, every write lands under the prefix of the store
            /// beneath, and two handles on one store are one object exactly when their full
            /// keys are.
            #[test]
            fn a_prefixed_bucket_writes_only_under_its_prefix(k in hostile()) {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let store = Arc::new(crate::MemoryStore::new());
                let root = Bucket::on_memory_store("root", store.clone(), "memory:props");
                let scoped = root.to_builder().prefix("tenant/a").unwrap().build();
                let wrote = rt.block_on(scoped.put(k.as_str(), "x"));
                let listed: Vec<String> = rt.block_on(async {
                    use futures::TryStreamExt;
                    root.list("").map_ok(|o| o.key).try_collect().await
                }).unwrap();
                match wrote {
                    Ok(_) => {
                        prop_assert_eq!(listed.len(), 1);
                        prop_assert!(listed[0].starts_with("tenant/a/"), "{:?}", listed);
                        let full = format!("tenant/a/{}", k);
                        prop_assert!(scoped.is_same_object(&k, &root, &full));
                        prop_assert!(rt.block_on(scoped.rename(k.as_str(), k.as_str())).is_err());
                        prop_assert!(rt.block_on(scoped.exists(k.as_str())).unwrap());
                    }
                    Err(_) => prop_assert!(listed.is_empty()),
                }
            }
        }
    }

    #[test]
    fn path_round_trip() {
        let k = Key::new("a/b c/d.txt").unwrap();
        assert_eq!(Key::from_path(&k.to_path()), k);
    }
}
