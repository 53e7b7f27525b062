//! Object attributes (content headers and user metadata) as a plain string map.

use std::collections::BTreeMap;

use object_store::{Attribute, AttributeValue, Attributes};

use crate::error::{Result, StorageError};

/// Largest total size of user metadata S3 accepts (keys + values), in bytes.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// Prefix marking user metadata in [`attributes_to_map`]'s output.
pub const META_PREFIX: &str = "meta:";

/// `Attributes` → `{"content-type": .., "meta:owner": ..}`, stable order.
pub fn attributes_to_map(attrs: &Attributes) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|(k, v)| {
            let name = match k {
                Attribute::ContentDisposition => "content-disposition".to_string(),
                Attribute::ContentEncoding => "content-encoding".to_string(),
                Attribute::ContentLanguage => "content-language".to_string(),
                Attribute::ContentType => "content-type".to_string(),
                Attribute::CacheControl => "cache-control".to_string(),
                Attribute::StorageClass => "storage-class".to_string(),
                Attribute::Metadata(m) => format!("{META_PREFIX}{m}"),
                other => format!("{other:?}"),
            };
            (name, v.as_ref().to_string())
        })
        .collect()
}

/// Inverse of [`attributes_to_map`]; unknown names are ignored.
pub fn map_to_attributes(map: &BTreeMap<String, String>) -> Attributes {
    let mut attrs = Attributes::new();
    for (k, v) in map {
        let key = match k.as_str() {
            "content-disposition" => Attribute::ContentDisposition,
            "content-encoding" => Attribute::ContentEncoding,
            "content-language" => Attribute::ContentLanguage,
            "content-type" => Attribute::ContentType,
            "cache-control" => Attribute::CacheControl,
            "storage-class" => Attribute::StorageClass,
            other => match other.strip_prefix(META_PREFIX) {
                Some(m) => Attribute::Metadata(m.to_string().into()),
                None => continue,
            },
        };
        attrs.insert(key, AttributeValue::from(v.clone()));
    }
    attrs
}

/// Check user metadata against S3's rules: names are non-empty ASCII letters, digits, `-`
/// and `_`; values are printable ASCII (S3 sends them as HTTP headers); keys and values
/// together fit in 2 KiB.
pub fn validate_user_metadata<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut total = 0;
    for (k, v) in entries {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(StorageError::invalid_input(
                format!("metadata name `{}`", k.escape_debug()),
                "metadata names may use only ASCII letters, digits, `-` and `_`",
            ));
        }
        if !v.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(StorageError::invalid_input(
                format!("metadata `{k}`"),
                "metadata values must be printable ASCII (they travel as HTTP headers); encode other text first",
            ));
        }
        total += k.len() + v.len();
    }
    if total > MAX_USER_METADATA_BYTES {
        return Err(StorageError::invalid_input(
            "metadata",
            format!(
                "user metadata is {total} bytes but S3 allows at most {MAX_USER_METADATA_BYTES} bytes (names + values); store large values in the object body"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip() {
        let mut a = Attributes::new();
        a.insert(Attribute::ContentType, "text/plain".into());
        a.insert(Attribute::Metadata("owner".into()), "ana".into());
        let m = attributes_to_map(&a);
        assert_eq!(m["content-type"], "text/plain");
        assert_eq!(m["meta:owner"], "ana");
        assert_eq!(attributes_to_map(&map_to_attributes(&m)), m);
    }

    #[test]
    fn metadata_limit() {
        let big = "x".repeat(2100);
        let err = validate_user_metadata([("k", big.as_str())]).unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
        assert!(validate_user_metadata([("bad name", "v")]).is_err());
        assert!(validate_user_metadata([("ok", "v")]).is_ok());
    }
}
