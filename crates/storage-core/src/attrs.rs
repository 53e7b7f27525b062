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
        // Bytes, not chars: a non-ASCII character has no byte in this range either, and the
        // write log makes this a 2 KB scan on every conditional write.
        if !v.bytes().all(|b| (b' '..=b'~').contains(&b)) {
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

/// The name a header-valued attribute goes by in errors and flags (`content type`), or
/// `None` for user metadata (checked by [`validate_user_metadata`]).
fn header_field(attr: &Attribute) -> Option<&'static str> {
    Some(match attr {
        Attribute::ContentType => "content type",
        Attribute::CacheControl => "cache control",
        Attribute::ContentDisposition => "content disposition",
        Attribute::ContentEncoding => "content encoding",
        Attribute::ContentLanguage => "content language",
        Attribute::StorageClass => "storage class",
        Attribute::Metadata(_) => return None,
        _ => "header",
    })
}

/// Check one header value: printable ASCII only.
///
/// Values travel as HTTP headers, and a CR or LF in one would end the header early (a
/// request-splitting hole on a plain HTTP client, a panic inside `object_store`'s SigV4
/// signer on S3 and R2); other control characters and non-ASCII bytes are refused by the
/// signer too. The local folder would store them as given, so the rule is applied before
/// any backend sees the value: one answer on every backend.
pub fn validate_header_value(field: &str, value: &str) -> Result<()> {
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        let what = if c.is_control() {
            format!("contains the control character {c:?}")
        } else {
            format!("contains the non-ASCII character {c:?}")
        };
        return Err(StorageError::invalid_input(
            field,
            format!(
                "`{}` {what}; header values must be printable ASCII (remove line breaks and control characters; percent-encode other text as RFC 8187 describes)",
                value.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Check every header-valued attribute (content type, cache control, content disposition,
/// encoding and language, storage class) with [`validate_header_value`]; the error names
/// the field. Called by every put path of [`Bucket`](crate::Bucket) before a byte is sent.
pub fn validate_attributes(attrs: &Attributes) -> Result<()> {
    for (attr, value) in attrs.iter() {
        if let Some(field) = header_field(attr) {
            validate_header_value(field, value.as_ref())?;
        }
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

    #[tokio::test]
    async fn a_put_with_a_line_break_in_a_header_writes_nothing() {
        use crate::{Bucket, PutOpts};
        let dir = tempfile::tempdir().unwrap();
        for bucket in [Bucket::memory("m"), Bucket::local("l", dir.path()).unwrap()] {
            bucket.put("k", "old").await.unwrap();
            let opts = PutOpts {
                cache_control: Some("no-cache\r\nX-Injected: 1".into()),
                ..Default::default()
            };
            let err = bucket.put_with("k", "new", opts.clone()).await.unwrap_err();
            assert!(
                matches!(&err, StorageError::InvalidInput { field, .. } if field == "cache control"),
                "{err}"
            );
            let stream = futures::stream::iter([Ok(bytes::Bytes::from("new"))]);
            assert!(bucket.put_stream("k", stream, opts).await.is_err());
            assert_eq!(bucket.get("k").await.unwrap().bytes, "old");
        }
    }

    #[test]
    fn header_values_refuse_control_and_non_ascii_characters() {
        let fields = [
            (Attribute::ContentType, "content type"),
            (Attribute::CacheControl, "cache control"),
            (Attribute::ContentDisposition, "content disposition"),
            (Attribute::ContentEncoding, "content encoding"),
            (Attribute::ContentLanguage, "content language"),
            (Attribute::StorageClass, "storage class"),
        ];
        for (attr, field) in fields {
            for bad in [
                "a\r\nX-Evil: 1",
                "a\nb",
                "a\rb",
                "\0",
                "tab\there",
                "\u{7f}",
                "caf\u{e9}",
            ] {
                let mut attrs = Attributes::new();
                attrs.insert(attr.clone(), bad.to_string().into());
                let err = validate_attributes(&attrs).unwrap_err();
                assert!(
                    matches!(&err, StorageError::InvalidInput { field: f, .. } if f == field),
                    "{field} {bad:?}: {err}"
                );
                assert!(err.to_string().contains("printable ASCII"), "{err}");
            }
            let mut attrs = Attributes::new();
            attrs.insert(attr, "text/plain; charset=utf-8".into());
            validate_attributes(&attrs).unwrap();
        }
    }
}
