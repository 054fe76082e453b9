//! `bulwark export`: a snapshot (or a path in it) as a tar or zip stream, for a customer's own
//! copy of their data. Streaming in constant memory: one blob is in memory at a time, whatever
//! the snapshot's size, and the archive goes to any writer (a file, stdout).
//!
//! The archive holds the snapshot's files under their paths (relative, never `..`), with what
//! metadata the format allows (tar: mode, mtime, owner ids and names, symlinks; zip: mode,
//! mtime, symlinks), and a last entry `SHA256SUMS`: the SHA-256 of every regular file, computed
//! while streaming, in `sha256sum` format, so `sha256sum -c SHA256SUMS` checks an extraction.
//! Devices, fifos and sockets are listed in the report, not exported.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bulwark_repo::{Id, MasterIndex, Node, NodeKind, Repository};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::browse;
use crate::error::{Error, Result};

/// The name of the checksum entry.
pub const SHA256SUMS: &str = "SHA256SUMS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Tar,
    Zip,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub snapshot: String,
    pub path: String,
    pub format: Format,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Entries the format cannot hold (devices, fifos, sockets).
    pub skipped: Vec<String>,
    /// SHA-256 of the `SHA256SUMS` entry itself.
    pub sha256sums: String,
}

/// Reads a file's content blob by blob, hashing as it goes.
struct Content<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    blobs: std::slice::Iter<'a, Id>,
    current: Vec<u8>,
    at: usize,
    hash: Sha256,
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(id) = self.blobs.next() else {
                return Ok(0);
            };
            let loc = self.index.lookup(id).ok_or_else(|| {
                std::io::Error::other(format!("blob {} is not in the index", id.short()))
            })?;
            self.current = self.repo.read_blob(&loc).map_err(std::io::Error::other)?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.hash.update(&buf[..n]);
        self.at += n;
        Ok(n)
    }
}

/// One entry to write.
enum Entry<'a> {
    Dir,
    File(&'a mut dyn Read),
    Symlink(PathBuf),
}

trait Sink {
    fn add(&mut self, path: &str, node: &Node, entry: Entry) -> std::io::Result<()>;
    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()>;
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

struct TarSink<W: Write>(tar::Builder<W>);

impl<W: Write> Sink for TarSink<W> {
    fn add(&mut self, path: &str, node: &Node, entry: Entry) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(node.mode & 0o7777);
        h.set_mtime(node.mtime_ns.max(0) as u64 / 1_000_000_000);
        h.set_uid(node.uid as u64);
        h.set_gid(node.gid as u64);
        if !node.user.is_empty() {
            let _ = h.set_username(&node.user);
        }
        if !node.group.is_empty() {
            let _ = h.set_groupname(&node.group);
        }
        match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.0
                    .append_data(&mut h, format!("{path}/"), std::io::empty())
            }
            Entry::File(content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(node.size);
                self.0.append_data(&mut h, path, content)
            }
            Entry::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                self.0.append_link(&mut h, path, target)
            }
        }
    }

    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        self.0.append_data(&mut h, path, bytes)
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.0.into_inner()?.flush()
    }
}

struct ZipSink<W: Write>(zip::ZipWriter<zip::write::StreamWriter<W>>);

fn zip_time(mtime_ns: i64) -> zip::DateTime {
    let t = chrono::DateTime::from_timestamp(mtime_ns.div_euclid(1_000_000_000), 0)
        .unwrap_or_default()
        .naive_utc();
    use chrono::{Datelike, Timelike};
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default()
}

fn zip_err(e: zip::result::ZipError) -> std::io::Error {
    std::io::Error::other(e)
}

impl<W: Write> Sink for ZipSink<W> {
    fn add(&mut self, path: &str, node: &Node, entry: Entry) -> std::io::Result<()> {
        let opts = zip::write::SimpleFileOptions::default()
            .unix_permissions(node.mode & 0o7777)
            .last_modified_time(zip_time(node.mtime_ns))
            .large_file(node.size >= u32::MAX as u64);
        match entry {
            Entry::Dir => self.0.add_directory(path, opts).map_err(zip_err),
            Entry::File(content) => {
                self.0.start_file(path, opts).map_err(zip_err)?;
                std::io::copy(content, &mut self.0)?;
                Ok(())
            }
            Entry::Symlink(target) => self
                .0
                .add_symlink(path, target.to_string_lossy(), opts)
                .map_err(zip_err),
        }
    }

    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        self.0.start_file(path, opts).map_err(zip_err)?;
        self.0.write_all(bytes)
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.0.finish().map_err(zip_err)?.flush()
    }
}

/// Streams `spec` (`ID[:PATH]`) of `repo` to `out` as `format`.
pub fn export(
    repo: &Repository,
    spec: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<ExportReport> {
    let index = repo.load_index()?;
    let sel = browse::select(repo, &index, spec, None)?;
    let tree = browse::selected_tree(repo, &index, &sel)?;
    let mut sink: Box<dyn Sink + '_> = match format {
        Format::Tar => Box::new(TarSink(tar::Builder::new(&mut *out))),
        Format::Zip => Box::new(ZipSink(zip::ZipWriter::new_stream(&mut *out))),
    };
    let mut report = ExportReport {
        snapshot: sel.id.to_hex(),
        path: sel.path.display().to_string(),
        format,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        skipped: Vec::new(),
        sha256sums: String::new(),
    };
    let mut sums = String::new();
    // The walk's visitor speaks the repository's errors: a failed write is kept here and the
    // walk stopped.
    let mut write_error: Option<std::io::Error> = None;
    let walked = browse::walk(repo, &index, &tree, Path::new(""), &mut |path, node| {
        let name = path.to_string_lossy().into_owned();
        let written = match node.kind {
            NodeKind::Dir => {
                report.dirs += 1;
                sink.add(&name, node, Entry::Dir)
            }
            NodeKind::File => {
                let mut content = Content {
                    repo,
                    index: &index,
                    blobs: node.content.iter(),
                    current: Vec::new(),
                    at: 0,
                    hash: Sha256::new(),
                };
                let written = sink.add(&name, node, Entry::File(&mut content));
                sums += &format!("{}  {name}\n", hex::encode(content.hash.finalize()));
                report.files += 1;
                report.bytes += node.size;
                written
            }
            NodeKind::Symlink => {
                report.symlinks += 1;
                let to = PathBuf::from(node.link_target()?);
                sink.add(&name, node, Entry::Symlink(to))
            }
            _ => {
                report.skipped.push(name);
                Ok(())
            }
        };
        written.map_err(|e| {
            let stop = bulwark_repo::Error::Invalid(e.to_string());
            write_error = Some(e);
            stop
        })
    });
    let target = |e: std::io::Error| Error::Target(format!("writing the export: {e}"));
    if let Some(e) = write_error {
        return Err(target(e));
    }
    walked?;
    sink.add_bytes(SHA256SUMS, sums.as_bytes())
        .map_err(target)?;
    sink.finish().map_err(target)?;
    report.sha256sums = hex::encode(Sha256::digest(sums.as_bytes()));
    Ok(report)
}
