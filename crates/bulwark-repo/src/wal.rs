//! Archived PostgreSQL WAL: one sealed object per file PostgreSQL archives (segments, `.partial`
//! segments, `.history` and `.backup` files), in `wal/`.
//!
//! # Format
//! An archived file of WAL stream `S` named `N` is the object `wal/S-N`. `S` (32 hex digits) is a
//! keyed hash of the dataset's name and the cluster's system identifier, so two clusters never
//! share a stream (a cluster made anew by `initdb` starts a new one) and object names reveal
//! neither. `N` is PostgreSQL's own file name, checked against the four forms it uses. The object
//! is sealed like a snapshot (`crypto::MasterKey::seal_object`); its plaintext is
//! `"BWW1" || header length (u32 LE) || header (JSON) || body`, where the header names the stream
//! and the file (so an object renamed in storage is refused), the time it was archived, the raw
//! length and BLAKE3 hash of the file, and whether the body is zstd-compressed.
//!
//! # Protocol
//! Objects are written create-only and never rewritten: archiving a file again succeeds only when
//! the stored one has the same content (PostgreSQL retries a file whose acknowledgement was lost),
//! and fails when it differs, so nothing archived is ever replaced. A write returns only when the
//! object is durable (`fsync` locally, a completed PUT on object storage), and in a local
//! repository only when the repository is still there after it (a disk unmounted under a
//! running pusher leaves a mount point that writes would silently fill): only then may
//! `archive_command` report success. Pushing takes no lock and reads no index: prune removes only
//! files older than every retained base backup needs, which a push never adds.
//!
//! Repositories made before this kind existed simply have no `wal/` folder.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{FileKind, Written};
use crate::error::{Error, Result};
use crate::repository::Repository;

const MAGIC: &[u8; 4] = b"BWW1";

/// The id of a dataset's WAL stream for one cluster (by its system identifier).
pub fn stream_id(repo: &Repository, dataset: &str, system_identifier: u64) -> String {
    let key = crate::crypto::derive_key(repo.key().secret(), b"", b"bulwark v1 wal stream");
    let mut h = blake3::Hasher::new_keyed(&key);
    h.update(&(dataset.len() as u64).to_le_bytes());
    h.update(dataset.as_bytes());
    h.update(&system_identifier.to_le_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// Whether `name` is a file name PostgreSQL archives: a segment (`TTTTTTTTXXXXXXXXYYYYYYYY`), a
/// `.partial` segment, a timeline's `.history` or a base backup's `.backup` file.
pub fn is_wal_file_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    };
    match name.split_once('.') {
        None => hex(name, 24),
        Some((t, "history")) => hex(t, 8),
        Some((s, "partial")) => hex(s, 24),
        Some((s, rest)) => match rest.split_once('.') {
            Some((off, "backup")) => hex(s, 24) && hex(off, 8),
            _ => false,
        },
    }
}

/// What a stored object says about the file it holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WalHeader {
    pub stream: String,
    pub name: String,
    pub archived_at: DateTime<Utc>,
    pub size: u64,
    /// BLAKE3 of the file's bytes, hex.
    pub blake3: String,
    pub compressed: bool,
}

/// The outcome of archiving one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now; this many bytes in the repository.
    Stored(u64),
    /// The same content was archived before.
    AlreadyArchived,
}

/// One WAL stream of a repository.
pub struct WalArchive<'r> {
    repo: &'r Repository,
    stream: String,
}

impl<'r> WalArchive<'r> {
    pub fn new(repo: &'r Repository, stream: impl Into<String>) -> WalArchive<'r> {
        WalArchive {
            repo,
            stream: stream.into(),
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn object_name(&self, name: &str) -> Result<String> {
        if !is_wal_file_name(name) {
            return Err(Error::Invalid(format!(
                "'{name}' is not a WAL file name PostgreSQL archives"
            )));
        }
        Ok(format!("{}-{name}", self.stream))
    }

    /// Archive file `name` with content `data`, durably; see the module's protocol.
    pub fn push(&self, name: &str, data: &[u8]) -> Result<Pushed> {
        let object = self.object_name(name)?;
        let hash = blake3::hash(data).to_hex().to_string();
        let level = self.repo.settings().compression_level;
        let compressed = zstd::bulk::compress(data, level)
            .ok()
            .filter(|c| c.len() < data.len());
        let header = WalHeader {
            stream: self.stream.clone(),
            name: name.to_string(),
            archived_at: Utc::now(),
            size: data.len() as u64,
            blake3: hash.clone(),
            compressed: compressed.is_some(),
        };
        let header_json = serde_json::to_vec(&header).expect("headers serialise");
        let body = compressed.as_deref().unwrap_or(data);
        let mut plain = Vec::with_capacity(8 + header_json.len() + body.len());
        plain.extend_from_slice(MAGIC);
        plain.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
        plain.extend_from_slice(&header_json);
        plain.extend_from_slice(body);
        let sealed = self.repo.key().seal_object(&plain);
        let stored = sealed.len() as u64;
        let backend = self.repo.backend();
        // A local repository whose disk went away (unmounted) leaves an empty mount point, and
        // writing recreates the folders there: the file would be safe nowhere. Before and after.
        let still_there = || match backend.remote() {
            true => Ok(()),
            false => crate::repository::describe_header(backend.as_ref()).map(drop),
        };
        still_there()?;
        let written = backend.create(FileKind::Wal, &object, Bytes::from(sealed))?;
        still_there()?;
        match written {
            Written::Created => Ok(Pushed::Stored(stored)),
            Written::Existed => {
                let (there, _) = self.read(name)?;
                if there.blake3 == hash && there.size == data.len() as u64 {
                    Ok(Pushed::AlreadyArchived)
                } else {
                    Err(Error::Invalid(format!(
                        "WAL file {name} is archived already with different content ({} bytes, the new one {}): \
                         refusing to replace it (is another cluster archiving into this dataset?)",
                        there.size,
                        data.len()
                    )))
                }
            }
        }
    }

    /// The archived file `name`, checked against its header; `None` when it is not archived.
    pub fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.read(name) {
            Ok((_, data)) => Ok(Some(data)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The header of archived file `name`.
    pub fn header(&self, name: &str) -> Result<WalHeader> {
        self.read(name).map(|(h, _)| h)
    }

    fn read(&self, name: &str) -> Result<(WalHeader, Vec<u8>)> {
        let object = self.object_name(name)?;
        let what = format!("wal/{object}");
        let stored = self.repo.backend().read(FileKind::Wal, &object)?;
        let plain = self.repo.key().open_object(&what, &stored)?;
        if plain.len() < 8 || &plain[..4] != MAGIC {
            return Err(Error::corrupt(&what, "not an archived WAL file"));
        }
        let hlen = u32::from_le_bytes(plain[4..8].try_into().expect("4 bytes")) as usize;
        let header_end = 8usize
            .checked_add(hlen)
            .filter(|e| *e <= plain.len())
            .ok_or_else(|| Error::corrupt(&what, "truncated header"))?;
        let header: WalHeader = serde_json::from_slice(&plain[8..header_end])
            .map_err(|e| Error::corrupt(&what, format!("header: {e}")))?;
        if header.stream != self.stream || header.name != name {
            return Err(Error::corrupt(
                &what,
                format!(
                    "it holds {} of another stream or name ({}): moved in storage",
                    header.name, header.stream
                ),
            ));
        }
        let body = &plain[header_end..];
        let data = if header.compressed {
            zstd::bulk::decompress(body, header.size as usize)
                .map_err(|e| Error::corrupt(&what, format!("decompression: {e}")))?
        } else {
            body.to_vec()
        };
        if data.len() as u64 != header.size
            || blake3::hash(&data).to_hex().as_str() != header.blake3
        {
            return Err(Error::corrupt(&what, "content does not match its header"));
        }
        Ok((header, data))
    }

    /// Every archived file of this stream: `(name, stored size)`, sorted by name.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        let prefix = format!("{}-", self.stream);
        let mut out: Vec<(String, u64)> = self
            .repo
            .backend()
            .list(FileKind::Wal)?
            .into_iter()
            .filter_map(|(n, size)| n.strip_prefix(&prefix).map(|f| (f.to_string(), size)))
            .filter(|(f, _)| is_wal_file_name(f))
            .collect();
        out.sort();
        Ok(out)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.repo
            .backend()
            .remove(FileKind::Wal, &self.object_name(name)?)
    }
}

/// Every stream in the repository with its files, by stream id.
pub fn streams(
    repo: &Repository,
) -> Result<std::collections::BTreeMap<String, Vec<(String, u64)>>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for (n, size) in repo.backend().list(FileKind::Wal)? {
        match n.split_once('-') {
            Some((stream, file)) if is_wal_file_name(file) => {
                out.entry(stream.to_string())
                    .or_default()
                    .push((file.to_string(), size));
            }
            _ => tracing::warn!("ignoring stray object wal/{n}"),
        }
    }
    for files in out.values_mut() {
        files.sort();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credential, Settings, StoreBackend};

    fn repository(dir: &std::path::Path) -> Repository {
        let backend = std::sync::Arc::new(StoreBackend::local(dir, true).unwrap());
        let (cred, _) = Credential::new_key_file();
        Repository::init(backend, &cred, Settings::default()).unwrap()
    }

    #[test]
    fn files_round_trip_are_never_replaced_and_know_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path());
        let a = WalArchive::new(&repo, stream_id(&repo, "db", 42));
        assert_ne!(a.stream(), stream_id(&repo, "db", 43));
        assert_ne!(a.stream(), stream_id(&repo, "db2", 42));
        let seg: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let name = "000000010000000000000003";
        assert!(matches!(a.push(name, &seg).unwrap(), Pushed::Stored(n) if n < seg.len() as u64));
        assert_eq!(a.push(name, &seg).unwrap(), Pushed::AlreadyArchived);
        let mut other = seg.clone();
        other[7] ^= 1;
        let e = a.push(name, &other).unwrap_err().to_string();
        assert!(e.contains("different content"), "{e}");
        assert_eq!(a.fetch(name).unwrap().unwrap(), seg);
        assert_eq!(a.fetch("000000010000000000000004").unwrap(), None);
        assert!(a.push("../config", b"x").is_err());
        a.push(
            "00000002.history",
            b"1\t0/3000000\tno recovery target specified\n",
        )
        .unwrap();
        assert_eq!(
            a.list()
                .unwrap()
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            [name, "00000002.history"]
        );
        assert_eq!(streams(&repo).unwrap()[a.stream()].len(), 2);
        // An object copied under another name is refused.
        let wal = dir.path().join("wal");
        std::fs::copy(
            wal.join(format!("{}-{name}", a.stream())),
            wal.join(format!("{}-000000010000000000000009", a.stream())),
        )
        .unwrap();
        let e = a.fetch("000000010000000000000009").unwrap_err().to_string();
        assert!(e.contains("moved in storage"), "{e}");
        a.remove(name).unwrap();
        assert_eq!(a.fetch(name).unwrap(), None);
    }

    #[test]
    fn wal_names_are_recognised() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "000000010000000000000003.00000028.backup",
        ] {
            assert!(is_wal_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../../config",
            "00000001000000000000000",
            "000000010000000000000003.done",
            "0000000100000000000000aa",
            "00000002.history/x",
            "000000010000000000000003.0000028.backup",
        ] {
            assert!(!is_wal_file_name(bad), "{bad}");
        }
    }
}
