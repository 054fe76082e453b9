//! S3 Object Lock: objects the storage itself refuses to delete (by version) or overwrite until
//! a retain-until date, whatever credential asks.
//!
//! Protocol:
//! - `init --object-lock MODE --lock-days N` refuses a bucket without Object Lock and records
//!   [`ObjectLock`] in the sealed settings. Every object written to the repository from then on
//!   (the key slot and config first) is locked right after its PUT, in `MODE`, until
//!   `N + MARGIN_DAYS` days from its write (PutObjectRetention). A bucket default retention
//!   would save that request, but S3 then wants a Content-MD5 on every PUT, which object_store
//!   does not send.
//! - A retained snapshot needs its objects for at least `N` days from its time (the retention
//!   window the locks serve; a hold until later needs them until then). Objects written for it
//!   are locked from their write, which is later; objects it shares with older backups (packs
//!   found by deduplication, the config, key slots, index files) are extended by the maintenance
//!   step (`bulwark_ops::object_lock`) with [`LockClient::extend`].
//! - A bucket with Object Lock is versioned: a plain DELETE (prune's, or a thief's) only adds a
//!   delete marker, and never fails; the locked version stays until its date, and only a delete
//!   of that version is refused. A lifecycle rule expiring noncurrent versions frees the space
//!   once the locks allow it (see README).
//!
//! object_store sends none of the lock requests, so [`LockClient`] signs the few it needs with
//! object_store's own SigV4 signer and credentials, over its HTTP client.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use object_store::ClientOptions;
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Days added to every lock beyond what the retention needs: room for a late maintenance run.
pub const MARGIN_DAYS: u32 = 7;

/// The longest retention window a repository may ask locks for (about 100 years).
pub const MAX_LOCK_DAYS: u32 = 36_500;

/// S3's two lock modes. Governance locks can be lifted by a principal allowed to bypass them;
/// compliance locks by no one, the account's root included.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "governance" => Some(LockMode::Governance),
            "compliance" => Some(LockMode::Compliance),
            _ => None,
        }
    }

    fn s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A repository's Object Lock setting, fixed at `init`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// The retention window the locks serve: each snapshot's objects stay locked at least this
    /// many days from the snapshot's time.
    pub days: u32,
}

/// An object's current lock.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: Option<LockMode>,
    pub until: DateTime<Utc>,
}

/// Signs and sends the Object Lock requests of one bucket.
pub struct LockClient {
    s3: Arc<AmazonS3>,
    http: HttpClient,
    /// `scheme://host[:port]/bucket`, path-style.
    base: String,
    region: String,
    prefix: String,
    /// The lock every write gets, once the repository's settings are read.
    writes: std::sync::OnceLock<ObjectLock>,
}

impl std::fmt::Debug for LockClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockClient")
            .field("base", &self.base)
            .finish()
    }
}

impl LockClient {
    pub(crate) fn new(
        s3: Arc<AmazonS3>,
        options: &ClientOptions,
        endpoint: Option<&str>,
        bucket: &str,
        region: &str,
        prefix: &str,
    ) -> Result<LockClient> {
        let http = ReqwestConnector::default()
            .connect(options)
            .map_err(|e| Error::Backend(format!("s3://{bucket}: {e}")))?;
        let base = match endpoint {
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        Ok(LockClient {
            s3,
            http,
            base,
            region: region.to_string(),
            prefix: prefix.to_string(),
            writes: std::sync::OnceLock::new(),
        })
    }

    /// Refuse a bucket created without Object Lock (GetObjectLockConfiguration), before
    /// anything is written to it.
    pub fn require_enabled(&self) -> Result<()> {
        let what = "reading the bucket's Object Lock configuration";
        let (_, body) = self
            .send("GET", "?object-lock", Vec::new(), what)
            .map_err(|e| e.into_error(what, &self.base))?;
        match tag(&String::from_utf8_lossy(&body), "ObjectLockEnabled") {
            Some("Enabled") => Ok(()),
            _ => Err(Error::Backend(format!(
                "{what} at {}: the bucket has no Object Lock; create it with Object Lock enabled",
                self.base
            ))),
        }
    }

    /// From now on, lock every object this backend writes in `lock.mode` for `lock.days` plus
    /// [`MARGIN_DAYS`] (set once, when the repository's settings are known).
    pub fn lock_writes(&self, lock: ObjectLock) {
        let _ = self.writes.set(lock);
    }

    /// Lock an object just written, if writes are locked.
    pub(crate) fn lock_written(&self, key: &str) -> Result<()> {
        match self.writes.get() {
            Some(lock) => self.extend(
                key,
                lock.mode,
                Utc::now() + chrono::Duration::days((lock.days + MARGIN_DAYS).into()),
            ),
            None => Ok(()),
        }
    }

    /// The lock of `key` (relative to the repository's prefix), from the lock headers of a HEAD
    /// request; `None` when it has none or is not there.
    pub fn retention(&self, key: &str) -> Result<Option<Retention>> {
        let what = format!("reading the lock of {key}");
        let path = format!("/{}", self.full_key(key)?);
        match self.send("HEAD", &path, Vec::new(), &what) {
            Ok((headers, _)) => {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let Some(until) = header("x-amz-object-lock-retain-until-date") else {
                    return Ok(None);
                };
                let until = DateTime::parse_from_rfc3339(until)
                    .map_err(|e| {
                        Error::Backend(format!("{what}: a retain-until date that is none: {e}"))
                    })?
                    .with_timezone(&Utc);
                let mode = header("x-amz-object-lock-mode")
                    .and_then(|m| LockMode::parse(&m.to_ascii_lowercase()));
                Ok(Some(Retention { mode, until }))
            }
            Err(LockError::Status(404, _)) => Ok(None),
            Err(e) => Err(e.into_error(&what, &self.base)),
        }
    }

    /// Lock `key` until `until` in `mode` (PutObjectRetention). S3 refuses to shorten a lock
    /// without a bypass, which this never asks for.
    pub fn extend(&self, key: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.s3(),
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let what = format!("locking {key}");
        self.send(
            "PUT",
            &format!("/{}?retention", self.full_key(key)?),
            body.into_bytes(),
            &what,
        )
        .map(|_| ())
        .map_err(|e| e.into_error(&what, &self.base))
    }

    fn full_key(&self, key: &str) -> Result<String> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        // Repository keys are hex names in fixed folders; a prefix is the user's. Anything that
        // would need escaping is refused rather than signed wrongly.
        if full
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        {
            Ok(full)
        } else {
            Err(Error::Invalid(format!(
                "object lock needs a prefix of letters, digits, '-', '_', '.' and '/': {full}"
            )))
        }
    }

    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        what: &str,
    ) -> std::result::Result<(http::HeaderMap, bytes::Bytes), LockError> {
        let url = format!("{}{path_and_query}", self.base);
        let digest = Sha256::digest(&body);
        let mut builder = http::Request::builder().method(method).uri(&url);
        if !body.is_empty() {
            // S3 wants a checksum on lock requests (Content-MD5 or one of these).
            builder = builder.header(
                "x-amz-checksum-sha256",
                base64::engine::general_purpose::STANDARD.encode(digest),
            );
        }
        let mut request: HttpRequest = builder
            .body(bytes::Bytes::from(body).into())
            .map_err(|e| LockError::Other(format!("{what}: {e}")))?;
        crate::backend::block_on(async {
            let credential = self
                .s3
                .credentials()
                .get_credential()
                .await
                .map_err(|e| LockError::Other(format!("{what}: no credentials: {e}")))?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .try_authorize(&mut request, Some(digest.as_slice()))
                .map_err(|e| LockError::Other(format!("{what}: cannot sign: {e}")))?;
            let response = self
                .http
                .execute(request)
                .await
                .map_err(|e| LockError::Other(format!("{what}: {e}")))?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = body
                .bytes()
                .await
                .map_err(|e| LockError::Other(format!("{what}: {e}")))?;
            if (200..300).contains(&status) {
                Ok((parts.headers, body))
            } else {
                let code = tag(&String::from_utf8_lossy(&body), "Code")
                    .unwrap_or_default()
                    .to_string();
                Err(LockError::Status(status, code))
            }
        })
    }
}

enum LockError {
    /// The HTTP status and S3's error code.
    Status(u16, String),
    Other(String),
}

impl LockError {
    fn into_error(self, what: &str, base: &str) -> Error {
        match self {
            LockError::Status(403, code) => Error::Backend(format!(
                "{what} at {base}: access denied ({code}): the credential may not change locks, or the lock forbids it"
            )),
            LockError::Status(status, code)
                if [
                    "InvalidRequest",
                    "InvalidBucketState",
                    "ObjectLockConfigurationNotFound",
                ]
                .iter()
                .any(|c| code.contains(c)) =>
            {
                Error::Backend(format!(
                    "{what} at {base}: the bucket has no Object Lock (HTTP {status} {code}); create it with Object Lock enabled"
                ))
            }
            LockError::Status(status, code) => {
                Error::Backend(format!("{what} at {base}: HTTP {status} {code}"))
            }
            LockError::Other(m) => Error::Backend(m),
        }
    }
}

/// The text of the first `<name>` element: S3's answers here are flat and fixed.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + len].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_flat_answers_and_garbage_reads_as_none() {
        let answer = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
                      <Message>Access Denied</Message></Error>";
        assert_eq!(tag(answer, "Code"), Some("AccessDenied"));
        assert_eq!(tag(answer, "RequestId"), None);
        assert_eq!(tag("<Code>unterminated", "Code"), None);
        assert_eq!(tag("", "Code"), None);
    }

    #[test]
    fn modes_parse_and_name_themselves_as_s3_does() {
        assert_eq!(LockMode::parse("governance"), Some(LockMode::Governance));
        assert_eq!(
            LockMode::parse("compliance").map(LockMode::s3),
            Some("COMPLIANCE")
        );
        assert_eq!(LockMode::parse("GOVERNANCE"), None);
    }
}
