//! Who may reach which served bucket: SigV4 secrets for s3s, and the per-credential bucket
//! lists checked on every request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use storage_core::Secret;

use crate::config::ServeConfig;
use crate::error::denied;

/// Operations an anonymous request may make on an `anonymous_read` bucket.
const ANONYMOUS_OPS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "HeadBucket",
    "ListObjects",
    "ListObjectsV2",
    "GetBucketLocation",
];

#[derive(Debug)]
struct Key {
    /// The credential's name in the config, for logs.
    name: String,
    secret: Secret,
    /// `None`: every bucket.
    buckets: Option<BTreeSet<String>>,
}

/// The access policy built from `[serve]`.
#[derive(Debug, Default)]
pub struct Policy {
    keys: BTreeMap<String, Key>,
    anonymous_read: BTreeSet<String>,
}

impl Policy {
    /// From the config's credentials and `anonymous_read`.
    pub fn new(cfg: &ServeConfig) -> Policy {
        let keys = cfg
            .credentials
            .iter()
            .map(|(name, c)| {
                let buckets = (!c.buckets.iter().any(|b| b == "*"))
                    .then(|| c.buckets.iter().cloned().collect());
                (
                    c.access_key.clone(),
                    Key {
                        name: name.clone(),
                        secret: c.secret_key.clone(),
                        buckets,
                    },
                )
            })
            .collect();
        Policy {
            keys,
            anonymous_read: cfg.anonymous_read.iter().cloned().collect(),
        }
    }

    /// Whether requests are signed and checked at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `creds` (`None`: an unsigned request) may reach `bucket` at all. With auth
    /// off, everything may.
    pub fn may_reach(&self, creds: Option<&Credentials>, bucket: &str) -> bool {
        if !self.enabled() {
            return true;
        }
        match creds.and_then(|c| self.keys.get(&c.access_key)) {
            Some(k) => k.buckets.as_ref().is_none_or(|b| b.contains(bucket)),
            None => false,
        }
    }

    /// The config name of an access key, for the access log.
    pub fn key_name(&self, access_key: &str) -> Option<&str> {
        self.keys.get(access_key).map(|k| k.name.as_str())
    }
}

/// [`S3Auth`] over the policy: the secret of an access key, for s3s to verify signatures
/// and presigned URLs with.
#[derive(Debug, Clone)]
pub struct Auth(pub Arc<Policy>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.keys.get(access_key) {
            Some(k) => Ok(SecretKey::from(k.secret.expose())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key is not configured in [serve.credentials]"
            )),
        }
    }
}

/// [`S3Access`] over the policy: a signed request may reach its credential's buckets, an
/// unsigned one only reads of `anonymous_read` buckets.
#[derive(Debug, Clone)]
pub struct Access(pub Arc<Policy>);

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let bucket = cx.s3_path().get_bucket_name().map(str::to_string);
        let op = cx.s3_op().name();
        match (cx.credentials(), bucket) {
            // ListBuckets: any configured key (the listing shows only its buckets).
            (Some(_), None) => Ok(()),
            (None, None) => Err(denied("a signature is required to list buckets")),
            (Some(c), Some(b)) => {
                if self.0.may_reach(Some(c), &b) {
                    Ok(())
                } else {
                    let who = self.0.key_name(&c.access_key).unwrap_or("this key");
                    Err(denied(format!(
                        "credential `{who}` may not reach bucket `{b}` (see its `buckets` in [serve.credentials])"
                    )))
                }
            }
            (None, Some(b)) => {
                if self.0.anonymous_read.contains(&b) && ANONYMOUS_OPS.contains(&op) {
                    Ok(())
                } else {
                    Err(denied(format!(
                        "{op} on `{b}` needs a signed request (anonymous_read allows only reads of the buckets it lists)"
                    )))
                }
            }
        }
    }
}
