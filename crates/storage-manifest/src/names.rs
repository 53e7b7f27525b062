//! Module and user names, time-sortable file ids, and the key layout.
//!
//! Layout (seed 003):
//! ```text
//! {module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}     data files
//! json_blobs/{name}.json                          keyed JSON documents
//! manifests/{module}/{user}/head.json             the manifest head (CAS-protected)
//! manifests/{module}/{user}/segments/{id}.jsonl   manifest segments (immutable)
//! manifests/{module}/{user}/compacted/{id}.parquet compacted manifest parts (immutable)
//! ```

use std::sync::Mutex;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use storage_core::{Result, StorageError};

/// Top-level folders Strata uses itself; a module may not be called this.
pub const RESERVED_MODULES: &[&str] = &["manifests", "json_blobs"];

/// Folder holding keyed JSON documents.
pub const BLOB_PREFIX: &str = "json_blobs";

/// Folder holding the manifests.
pub const MANIFEST_PREFIX: &str = "manifests";

/// Longest module or user name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Check a module or user name: 1-128 characters from `A-Z a-z 0-9 . _ - @`, not starting
/// with `.`; a module may not be one of [`RESERVED_MODULES`]. `field` names the argument in the
/// error (`module`, `user`).
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    let bad = |reason: String| Err(StorageError::invalid_input(field, reason));
    if name.is_empty() {
        return bad(format!(
            "the {field} name is empty; give a name such as `finance`"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!(
            "the {field} name is {} bytes; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return bad(format!("the {field} name `{name}` may not start with `.`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return bad(format!(
            "the {field} name `{}` contains {c:?}; use only letters, digits, `.`, `_`, `-` and `@`",
            name.escape_debug()
        ));
    }
    if field == "module" && RESERVED_MODULES.contains(&name) {
        return bad(format!(
            "`{name}` is reserved for Strata's own files ({}); choose another module name",
            RESERVED_MODULES.join(", ")
        ));
    }
    Ok(())
}

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of a file id: 10 characters of millisecond time + 16 of randomness (a lowercase ULID).
pub const ID_LEN: usize = 26;

/// A new file id for `at`: a lowercase ULID, so ids sort by creation time (to the millisecond)
/// and two writers never pick the same one (80 random bits). Within one process, ids made for
/// the same millisecond are monotonic (the random part is incremented), so they still sort in
/// creation order, also while ids for up to 15 other milliseconds (other threads, back-dated
/// writes) are made in between.
pub fn new_id(at: DateTime<Utc>) -> String {
    /// The 16 milliseconds most recently given ids, with the last random part used for
    /// each. A single "last" entry was not enough: one id made for another time between two
    /// ids of the same millisecond (another thread, a back-dated write) reset it.
    struct Recent {
        slots: [(u128, u128); 16],
        next: usize,
    }
    static RECENT: Mutex<Recent> = Mutex::new(Recent {
        slots: [(u128::MAX, 0); 16],
        next: 0,
    });
    const RANDOM_MASK: u128 = (1u128 << 80) - 1;
    let ms = at.timestamp_millis().max(0) as u128;
    let fresh =
        ((u128::from(fastrand::u64(..)) << 16) | u128::from(fastrand::u16(..))) & RANDOM_MASK;
    let random = {
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        match recent.slots.iter_mut().find(|(m, _)| *m == ms) {
            Some(slot) if slot.1 < RANDOM_MASK => {
                slot.1 += 1;
                slot.1
            }
            Some(slot) => {
                slot.1 = fresh;
                fresh
            }
            None => {
                let at = recent.next;
                recent.slots[at] = (ms, fresh);
                recent.next = (at + 1) % recent.slots.len();
                fresh
            }
        }
    };
    let value = (ms << 80) | random;
    let mut out = [0u8; ID_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (ID_LEN - 1 - i);
        *slot = CROCKFORD[((value >> shift) & 31) as usize];
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// The creation time encoded in an id made by [`new_id`].
pub fn id_time(id: &str) -> Result<DateTime<Utc>> {
    let invalid = || {
        StorageError::invalid_input(
            "id",
            format!(
                "`{}` is not a dataset file id (26 characters of lowercase Crockford base32, as returned by `write`)",
                id.escape_debug()
            ),
        )
    };
    if id.len() != ID_LEN {
        return Err(invalid());
    }
    let mut ms: i64 = 0;
    for b in id.bytes().take(10) {
        let digit = CROCKFORD
            .iter()
            .position(|c| *c == b.to_ascii_lowercase())
            .ok_or_else(invalid)?;
        ms = (ms << 5) | digit as i64;
    }
    if !id
        .bytes()
        .all(|b| CROCKFORD.contains(&b.to_ascii_lowercase()))
    {
        return Err(invalid());
    }
    Utc.timestamp_millis_opt(ms).single().ok_or_else(invalid)
}

/// `{module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}`, the date taken from the id.
pub fn data_key(module: &str, user: &str, id: &str, ext: &str) -> Result<String> {
    let t = id_time(id)?;
    Ok(format!(
        "{module}/{user}/{:04}/{:02}/{:02}/{id}.{ext}",
        t.year(),
        t.month(),
        t.day()
    ))
}

/// The folder holding every data file of `module`/`user`.
pub fn data_prefix(module: &str, user: &str) -> String {
    format!("{module}/{user}/")
}

/// The folder holding the manifest of `module`/`user`.
pub fn manifest_prefix(module: &str, user: &str) -> String {
    format!("{MANIFEST_PREFIX}/{module}/{user}/")
}

/// Parse a data key back into `(module, user, id, ext)`; `None` if it does not follow the layout.
pub fn parse_data_key(key: &str) -> Option<(&str, &str, &str, &str)> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 6 {
        return None;
    }
    let (file, ext) = parts[5].rsplit_once('.')?;
    let date_ok = parts[2].len() == 4
        && parts[3].len() == 2
        && parts[4].len() == 2
        && parts[2..5]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !date_ok || id_time(file).is_err() {
        return None;
    }
    Some((parts[0], parts[1], file, ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_with_the_field_named() {
        validate_name("module", "finance").unwrap();
        validate_name("user", "user-123@example.com").unwrap();
        for (field, bad) in [
            ("user", ""),
            ("user", "a/b"),
            ("user", ".hidden"),
            ("module", "manifests"),
            ("module", "json_blobs"),
            ("user", "tab\there"),
        ] {
            let err = validate_name(field, bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        // `manifests` is only reserved as a module.
        validate_name("user", "manifests").unwrap();
    }

    #[test]
    fn ids_of_one_millisecond_stay_in_order_while_other_times_interleave() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap();
        let mut last = new_id(t);
        for i in 1..=8 {
            // Ids for other times in between, as other threads and back-dated writes make.
            for j in 0..i {
                new_id(t + chrono::Duration::milliseconds(1 + j));
            }
            let next = new_id(t);
            assert!(last < next, "{last} then {next} after {i} other times");
            last = next;
        }
    }

    #[test]
    fn ids_sort_by_time_and_decode() {
        let t1 = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        let t2 = t1 + chrono::Duration::milliseconds(1);
        let a = new_id(t1);
        let b = new_id(t2);
        assert_eq!(a.len(), ID_LEN);
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(id_time(&a).unwrap(), t1);
        let (c, d) = (new_id(t1), new_id(t1));
        assert!(
            c < d,
            "same millisecond: still in creation order ({c}, {d})"
        );
        assert!(id_time("not-an-id").is_err());
        assert!(id_time("ZZZZZZZZZZ!ZZZZZZZZZZZZZZZ").is_err());
    }

    #[test]
    fn keys_follow_the_layout() {
        let t = Utc.with_ymd_and_hms(2024, 1, 5, 10, 0, 0).unwrap();
        let id = new_id(t);
        let key = data_key("finance", "user123", &id, "jsonl").unwrap();
        assert_eq!(key, format!("finance/user123/2024/01/05/{id}.jsonl"));
        assert_eq!(
            parse_data_key(&key),
            Some(("finance", "user123", id.as_str(), "jsonl"))
        );
        assert_eq!(parse_data_key("finance/user123/x.jsonl"), None);
        assert_eq!(
            parse_data_key("finance/user123/2024/01/05/nope.jsonl"),
            None
        );
    }
}
