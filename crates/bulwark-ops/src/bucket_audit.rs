//! Is a bucket really in its replica? Compare the two listings, key by key.
//!
//! An object is *replicated* when the replica has the same key with the same size and, where both
//! stores give a comparable entity tag, the same tag. Multipart S3 uploads carry tags of the form
//! `md5-N` that depend on the part size, which replication may change, so a pair where either tag
//! is multipart is compared by size alone, and counted (`size_only`) so that nobody mistakes it for
//! a content comparison. Nothing is downloaded: the audit costs one listing of each side.

use bulwark_repo::StoreBackend;
use bulwark_repo::backend::ObjectInfo;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// At most this many objects of each kind are listed in the report (all are counted).
pub const LISTED: usize = 1000;

/// An object the replica lacks or holds differently.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unreplicated {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// The replica's size when it holds the key with other content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketAudit {
    pub source: String,
    pub replica: String,
    pub at: DateTime<Utc>,
    pub source_objects: u64,
    pub source_bytes: u64,
    pub replica_objects: u64,
    /// In the source, not in the replica.
    pub missing: u64,
    /// Under the same key in both, with another size or entity tag.
    pub differing: u64,
    /// In the replica only (a replica may keep what the source deleted; reported, not judged).
    pub extra: u64,
    /// Pairs compared by size only (a multipart entity tag on either side).
    pub size_only: u64,
    /// When the oldest missing or differing object was last modified in the source.
    pub oldest_unreplicated: Option<DateTime<Utc>>,
    /// The first [`LISTED`] missing or differing objects, oldest first.
    pub unreplicated: Vec<Unreplicated>,
    /// The first [`LISTED`] keys found only in the replica.
    pub extra_keys: Vec<String>,
}

impl BucketAudit {
    pub fn in_sync(&self) -> bool {
        self.missing == 0 && self.differing == 0
    }
}

fn multipart(tag: &str) -> bool {
    tag.trim_matches('"').contains('-')
}

/// Whether the two listings agree on one key, and whether only the sizes could be compared (see
/// the module note).
fn same(a: &ObjectInfo, b: &ObjectInfo) -> (bool, bool) {
    if a.size != b.size {
        return (false, false);
    }
    match (&a.etag, &b.etag) {
        (Some(x), Some(y)) if !multipart(x) && !multipart(y) => (x == y, false),
        _ => (true, true),
    }
}

/// List both sides and compare them.
pub fn audit(
    source: &StoreBackend,
    replica: &StoreBackend,
    at: DateTime<Utc>,
) -> Result<BucketAudit> {
    use bulwark_repo::Backend;
    let src = source.list_objects()?;
    let dst = replica.list_objects()?;
    Ok(compare(
        source.location(),
        replica.location(),
        &src,
        &dst,
        at,
    ))
}

/// The comparison itself, over two listings sorted by key.
pub fn compare(
    source: &str,
    replica: &str,
    src: &[ObjectInfo],
    dst: &[ObjectInfo],
    at: DateTime<Utc>,
) -> BucketAudit {
    let mut out = BucketAudit {
        source: source.to_string(),
        replica: replica.to_string(),
        at,
        source_objects: src.len() as u64,
        source_bytes: src.iter().map(|o| o.size).sum(),
        replica_objects: dst.len() as u64,
        missing: 0,
        differing: 0,
        extra: 0,
        size_only: 0,
        oldest_unreplicated: None,
        unreplicated: Vec::new(),
        extra_keys: Vec::new(),
    };
    let mut unreplicated = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < src.len() || j < dst.len() {
        let order = match (src.get(i), dst.get(j)) {
            (Some(a), Some(b)) => a.key.cmp(&b.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let a = &src[i];
                out.missing += 1;
                unreplicated.push(Unreplicated {
                    key: a.key.clone(),
                    size: a.size,
                    modified: a.modified,
                    replica_size: None,
                });
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.extra += 1;
                if out.extra_keys.len() < LISTED {
                    out.extra_keys.push(dst[j].key.clone());
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (a, b) = (&src[i], &dst[j]);
                let (equal, size_only) = same(a, b);
                out.size_only += size_only as u64;
                if !equal {
                    out.differing += 1;
                    unreplicated.push(Unreplicated {
                        key: a.key.clone(),
                        size: a.size,
                        modified: a.modified,
                        replica_size: Some(b.size),
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    unreplicated.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.key.cmp(&b.key)));
    out.oldest_unreplicated = unreplicated.first().map(|u| u.modified);
    unreplicated.truncate(LISTED);
    out.unreplicated = unreplicated;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn obj(key: &str, size: u64, etag: &str, minute: u32) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            etag: Some(etag.into()),
            modified: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
        }
    }

    #[test]
    fn missing_differing_and_extra_objects_are_told_apart() {
        let src = [
            obj("a", 1, "\"x\"", 5),
            obj("b", 2, "\"y\"", 1),
            obj("c", 3, "\"z\"", 9),
            obj("d", 4, "\"m-2\"", 3),
        ];
        let dst = [
            obj("a", 1, "\"x\"", 6),
            obj("b", 2, "\"other\"", 2),
            obj("d", 4, "\"n-3\"", 4),
            obj("e", 5, "\"q\"", 4),
        ];
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let a = compare("s", "r", &src, &dst, now);
        assert_eq!((a.missing, a.differing, a.extra, a.size_only), (1, 1, 1, 1));
        assert!(!a.in_sync());
        let keys: Vec<_> = a.unreplicated.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["b", "c"], "oldest first");
        assert_eq!(a.oldest_unreplicated, Some(src[1].modified));
        assert_eq!(a.extra_keys, ["e"]);
        let same = compare("s", "r", &src, &src, now);
        assert!(same.in_sync() && same.oldest_unreplicated.is_none());
    }
}
