//! Single objects of a bucket that is a *source* or a *target*, not a repository: streamed
//! reads with their attributes, and streamed writes that set them again (`kind = "s3"`
//! datasets, see `bulwark_ops::bucket`).
//!
//! Memory stays bounded whatever an object's size: a read holds one response chunk of the HTTP
//! stream at a time; a write holds at most [`OBJECT_PART_SIZE`] being filled plus
//! [`PARTS_IN_FLIGHT`] parts on their way up. An object that fits one part goes up in one `PUT`.
//!
//! Attributes are named as their headers are, lower case (`content-type`, `cache-control`,
//! `content-disposition`, `content-encoding`, `content-language`), and user metadata
//! (`x-amz-meta-NAME`) as `meta.NAME`.
//!
//! Keys are what `object_store` can address: no empty segment and no `.` or `..` segment. A
//! listing that meets another key fails whole (its error names the key); a key's trailing `/`
//! (a console's "folder" marker) is dropped by the listing, so such a marker reads as missing.

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};

use super::{ObjectInfo, StoreBackend, one_line, runtime};
use crate::error::{Error, Result};

/// Objects larger than this go up in parts of this size (S3 takes parts of 5 MiB and more).
pub const OBJECT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one object uploading at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// An object's restorable attributes, `(name, value)` sorted by name (see the module note).
pub type ObjectAttributes = Vec<(String, String)>;

const USER_METADATA: &str = "meta.";

/// One object's content as it streams from the store, with what its response said about it.
pub struct ObjectReader {
    /// Key, size, entity tag and last-modified time of the version being read.
    pub info: ObjectInfo,
    pub attributes: ObjectAttributes,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    location: String,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match runtime().block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => {
                    return Err(std::io::Error::other(format!(
                        "reading {} at {}: {}",
                        self.info.key,
                        self.location,
                        one_line(&e)
                    )));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

fn attribute_name(a: &Attribute) -> Option<Cow<'static, str>> {
    Some(match a {
        Attribute::ContentType => "content-type".into(),
        Attribute::CacheControl => "cache-control".into(),
        Attribute::ContentDisposition => "content-disposition".into(),
        Attribute::ContentEncoding => "content-encoding".into(),
        Attribute::ContentLanguage => "content-language".into(),
        Attribute::Metadata(name) => format!("{USER_METADATA}{name}").into(),
        // Not returned by reads; a restore lands in the target bucket's default class.
        Attribute::StorageClass => return None,
        // `Attribute` is non-exhaustive: what a later object_store adds is not kept.
        _ => return None,
    })
}

fn attribute_of(name: &str) -> Option<Attribute> {
    Some(match name {
        "content-type" => Attribute::ContentType,
        "cache-control" => Attribute::CacheControl,
        "content-disposition" => Attribute::ContentDisposition,
        "content-encoding" => Attribute::ContentEncoding,
        "content-language" => Attribute::ContentLanguage,
        other => Attribute::Metadata(other.strip_prefix(USER_METADATA)?.to_string().into()),
    })
}

fn to_list(attributes: &Attributes) -> ObjectAttributes {
    let mut out: ObjectAttributes = attributes
        .iter()
        .filter_map(|(a, v)| Some((attribute_name(a)?.into_owned(), v.as_ref().to_string())))
        .collect();
    out.sort();
    out
}

fn from_list(list: &[(String, String)]) -> Result<Attributes> {
    let mut out = Attributes::new();
    for (name, value) in list {
        let attribute = attribute_of(name).ok_or_else(|| {
            Error::Invalid(format!(
                "'{name}' is not an object attribute a store can set"
            ))
        })?;
        out.insert(attribute, AttributeValue::from(value.clone()));
    }
    Ok(out)
}

impl StoreBackend {
    /// The store path of `key`, relative to the prefix.
    fn object_path(&self, key: &str) -> Result<StorePath> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        StorePath::parse(&full)
            .ok()
            .filter(|p| !key.is_empty() && p.as_ref() == full)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the key {key:?} cannot be addressed (empty, '.' or '..' segments)"
                ))
            })
    }

    /// Start reading the object at `key` (relative to the prefix). `NotFound` when it is gone.
    pub fn get_object(&self, key: &str) -> Result<ObjectReader> {
        let path = self.object_path(key)?;
        let result = runtime()
            .block_on(self.store.get_opts(&path, GetOptions::default()))
            .map_err(|e| self.map_err(format!("object {key}"), e))?;
        let info = ObjectInfo {
            key: key.to_string(),
            size: result.meta.size,
            etag: result.meta.e_tag.clone(),
            modified: result.meta.last_modified,
        };
        let attributes = to_list(&result.attributes);
        Ok(ObjectReader {
            info,
            attributes,
            stream: result.into_stream(),
            current: Bytes::new(),
            location: self.location.clone(),
        })
    }

    /// Write `reader`'s bytes to `key` (relative to the prefix) with `attributes`, replacing
    /// any object there. Returns the bytes written.
    pub fn put_object(
        &self,
        key: &str,
        reader: &mut dyn Read,
        attributes: &[(String, String)],
    ) -> Result<u64> {
        let path = self.object_path(key)?;
        let attrs = from_list(attributes)?;
        let what = || format!("object {key}");
        let read_err = |e: std::io::Error| Error::io(format!("reading the content of {key}"), e);
        // The first part decides: an object that fits one part goes up in one request.
        let mut first = Vec::with_capacity(OBJECT_PART_SIZE.min(1 << 20));
        let got = reader
            .take(OBJECT_PART_SIZE as u64 + 1)
            .read_to_end(&mut first)
            .map_err(read_err)?;
        if got <= OBJECT_PART_SIZE {
            let opts = PutOptions {
                mode: PutMode::Overwrite,
                attributes: attrs,
                ..Default::default()
            };
            runtime()
                .block_on(
                    self.store
                        .put_opts(&path, PutPayload::from(Bytes::from(first)), opts),
                )
                .map_err(|e| self.put_err(what(), e))?;
            return Ok(got as u64);
        }
        runtime().block_on(async {
            let opts = PutMultipartOptions {
                attributes: attrs,
                ..Default::default()
            };
            let upload = self
                .store
                .put_multipart_opts(&path, opts)
                .await
                .map_err(|e| self.put_err(what(), e))?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, OBJECT_PART_SIZE);
            let mut total = first.len() as u64;
            parts.write(&first);
            drop(first);
            let mut buf = vec![0u8; 1 << 20];
            let outcome: Result<()> = async {
                loop {
                    parts
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|e| self.put_err(what(), e))?;
                    // Reading blocks this thread, which is the caller's, not a runtime worker.
                    let n = reader.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        return Ok(());
                    }
                    total += n as u64;
                    parts.write(&buf[..n]);
                }
            }
            .await;
            match outcome {
                Ok(()) => {
                    parts.finish().await.map_err(|e| self.put_err(what(), e))?;
                    Ok(total)
                }
                Err(e) => {
                    let _ = parts.abort().await;
                    Err(e)
                }
            }
        })
    }

    fn put_err(&self, what: String, e: object_store::Error) -> Error {
        match e {
            // Writing needs nothing to exist but the bucket.
            object_store::Error::NotFound { .. } => Error::Backend(format!(
                "cannot write {what} at {}: the bucket does not exist",
                self.location
            )),
            other => self.map_err(what, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_round_trip_and_unknown_ones_are_refused() {
        let list: ObjectAttributes = vec![
            ("cache-control".into(), "no-cache".into()),
            ("content-type".into(), "image/png".into()),
            ("meta.owner".into(), "ops".into()),
        ];
        assert_eq!(to_list(&from_list(&list).unwrap()), list);
        assert!(from_list(&[("etag".into(), "x".into())]).is_err());
    }

    #[test]
    fn keys_a_store_cannot_address_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = StoreBackend::local(dir.path(), false).unwrap();
        assert!(b.object_path("a/b.txt").is_ok());
        for bad in ["", "a//b", "a/./b", "../x", "a/"] {
            assert!(b.object_path(bad).is_err(), "{bad:?}");
        }
    }
}
