//! A pack's files, written as a directory or a `.tar`, and read back from either.
//!
//! Layout: every file at the top of the directory, or under one folder named after the pack in a
//! tar (so `tar xf` makes that folder and `sha256sum -c MANIFEST` runs inside it). `MANIFEST`
//! lists every other file but `MANIFEST.sig` in `sha256sum` format (`HEX  NAME`, sorted by name);
//! `MANIFEST.sig` signs it (see [`super::sign`]). Nothing is ever written over: a directory
//! must be new or empty, a tar file new.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::EvidenceError;

pub const MANIFEST: &str = "MANIFEST";
pub const SIGNATURE: &str = "MANIFEST.sig";

/// Files by name (plain names, no folders).
pub type Files = BTreeMap<String, Vec<u8>>;

/// `MANIFEST`: the SHA-256 of every file but the manifest and its signature.
pub fn manifest(files: &Files) -> String {
    files
        .iter()
        .filter(|(name, _)| name.as_str() != MANIFEST && name.as_str() != SIGNATURE)
        .map(|(name, bytes)| format!("{}  {name}\n", hex::encode(Sha256::digest(bytes))))
        .collect()
}

/// Whether `out` names a tar file rather than a directory.
pub fn is_tar(out: &Path) -> bool {
    out.extension().is_some_and(|e| e == "tar")
}

/// Writes the pack to `out`: a `.tar` file, or a directory.
pub fn write(files: &Files, name: &str, out: &Path) -> Result<(), EvidenceError> {
    let io = |source| EvidenceError::Io {
        path: out.to_path_buf(),
        source,
    };
    if is_tar(out) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => EvidenceError::Exists(out.to_path_buf()),
                _ => io(e),
            })?;
        let mut w = std::io::BufWriter::new(file);
        write_tar(files, name, &mut w).map_err(io)?;
        w.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        return Ok(());
    }
    if out.exists() && std::fs::read_dir(out).map_err(io)?.next().is_some() {
        return Err(EvidenceError::Exists(out.to_path_buf()));
    }
    std::fs::create_dir_all(out).map_err(io)?;
    for (file, bytes) in files {
        let path = out.join(file);
        std::fs::write(&path, bytes).map_err(|source| EvidenceError::Io { path, source })?;
    }
    Ok(())
}

/// The pack as a tar stream: one folder `name/` holding every file, mode 0644, mtime 0 (so the
/// same pack is the same bytes).
pub fn write_tar(files: &Files, name: &str, w: &mut dyn Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    b.append_data(&mut dir, format!("{name}/"), std::io::empty())?;
    for (file, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, format!("{name}/{file}"), bytes.as_slice())?;
    }
    b.into_inner()?.flush()
}

/// The tar stream as bytes (for the API).
pub fn tar_bytes(files: &Files, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_tar(files, name, &mut out).expect("writing to memory cannot fail");
    out
}

/// Reads a pack: a directory, or a tar file (with its files at the top or under one folder).
/// Folders, links and special files inside are refused: a pack is flat.
pub fn read(path: &Path) -> Result<Files, EvidenceError> {
    let bad = |detail: String| EvidenceError::BadPack {
        path: path.to_path_buf(),
        detail,
    };
    let io = |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut files = Files::new();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(io)?;
            if !kind.is_file() {
                return Err(bad(format!("'{name}' is not a plain file")));
            }
            let p: PathBuf = entry.path();
            files.insert(
                name,
                std::fs::read(&p).map_err(|source| EvidenceError::Io { path: p, source })?,
            );
        }
        return Ok(files);
    }
    let mut archive = tar::Archive::new(std::fs::File::open(path).map_err(io)?);
    let mut top: Option<String> = None;
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let entry_path = entry.path().map_err(io)?.into_owned();
        let parts: Vec<String> = entry_path
            .components()
            .map(|c| match c {
                Component::Normal(s) => Ok(s.to_string_lossy().into_owned()),
                _ => Err(bad(format!("unsafe path '{}'", entry_path.display()))),
            })
            .collect::<Result<_, _>>()?;
        match entry.header().entry_type() {
            tar::EntryType::Directory if parts.len() == 1 && top.is_none() => {
                top = Some(parts[0].clone());
                continue;
            }
            tar::EntryType::Regular => {}
            _ => {
                return Err(bad(format!(
                    "'{}' is not a plain file",
                    entry_path.display()
                )));
            }
        }
        let name = match (parts.as_slice(), &top) {
            ([file], None) => file.clone(),
            ([dir, file], Some(t)) if dir == t => file.clone(),
            _ => {
                return Err(bad(format!(
                    "'{}' is not a file of the pack's folder",
                    entry_path.display()
                )));
            }
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(io)?;
        if files.insert(name.clone(), bytes).is_some() {
            return Err(bad(format!("'{name}' appears twice")));
        }
    }
    Ok(files)
}
