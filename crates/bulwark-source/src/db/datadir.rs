//! Base backups read straight from a running cluster's data directory, on the database host,
//! between `pg_backup_start` and `pg_backup_stop` (PostgreSQL's non-exclusive backup protocol).
//! Nothing passes through the server's walsender or `pg_basebackup`: the files are read once.
//!
//! - Only the directory of the very server the connection reaches is read: the server's
//!   backend for this session must be a child of the postmaster that `postmaster.pid` names, and
//!   `global/pg_control` must carry the server's system identifier. The identifier alone is not
//!   enough: a standby of the same cluster on this host has it too, and reading a standby's files
//!   during the primary's backup would mix two servers' pages.
//! - The session that started the backup stays open until it stops: if it closes first (a
//!   failed or interrupted backup) the server abandons the backup, and nothing is left behind.
//! - Files are read as they are while the server writes them. A page torn by a concurrent write
//!   is rewritten by replay from the start location, because the server logs whole pages while a
//!   backup runs. A file that vanishes during the walk (a dropped table) is left out, one that
//!   shrinks is kept as far as it was read, and one that grows is read to its size at the walk;
//!   replay recreates, truncates or extends each.
//! - What `pg_basebackup` leaves out is left out (as `basebackup.c` lists it): the contents of the
//!   WAL directory (the archive holds the WAL), runtime state that recovery rebuilds, temporary
//!   files, and files a restored directory must not inherit (`postmaster.pid`, an earlier
//!   `backup_label` or `backup_manifest`).
//! - The backup stops only once the WAL it needs is archived, and `pg_backup_stop` returns the
//!   `backup_label` the restored directory starts from: a stopped backup is restorable from the
//!   archive. The wait is the server's own test (`XLogArchiveIsBusy`: the stop segment's `.done`
//!   status file, or the segment already recycled), polled every 10 ms: the server's own wait
//!   (`pg_backup_stop(true)`) sleeps a whole second between looks, which was a third of a 1.5 GB
//!   cluster's backup here (3.2 s against 2.0 s).
//! - A `backup_manifest` in PostgreSQL's format (CRC-32C of every file as it was read) goes
//!   beside the `backup_label`, so `pg_verifybackup` can check a restored directory on its own.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::postgres::Client;
use sha2::{Digest, Sha256};

use super::physical::{Lsn, Segments, data_directory_system_identifier, server_clock};
use super::{DbError, DbResult};

/// Top-level directories whose contents a base backup leaves out (the directory itself is kept).
const SKIP_CONTENTS: &[&str] = &[
    "pg_wal",
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

/// Files left out wherever they are.
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postgresql.auto.conf.tmp",
];

/// Why `dir` is not the data directory of the server `client` is connected to, or `None` when it is.
pub fn not_the_servers(client: &mut Client, dir: &Path) -> DbResult<Option<String>> {
    let row = client.query_one(
        "SELECT pg_backend_pid(), system_identifier::text FROM pg_control_system()",
        &[],
    )?;
    let backend = row.get::<_, i32>(0);
    let system_id: String = row.get(1);
    let pid_file = dir.join("postmaster.pid");
    let postmaster = match fs::read_to_string(&pid_file) {
        Ok(text) => text.lines().next().unwrap_or_default().trim().to_string(),
        Err(e) => return Ok(Some(format!("cannot read {}: {e}", pid_file.display()))),
    };
    let parent = match fs::read_to_string(format!("/proc/{backend}/stat")) {
        // The fields after the command name (which may hold spaces) are: state, parent.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string)),
        Err(_) => None,
    };
    if parent.as_deref() != Some(postmaster.as_str()) {
        return Ok(Some(format!(
            "the server's process for this session (pid {backend}) is not a child of the postmaster \
             {} names (pid {postmaster}): the server runs on another host or in another container",
            pid_file.display()
        )));
    }
    match data_directory_system_identifier(dir) {
        Ok(id) if id.to_string() == system_id => Ok(None),
        Ok(id) => Ok(Some(format!(
            "{} belongs to cluster {id}, the server is cluster {system_id}",
            dir.display()
        ))),
        Err(e) => Ok(Some(e.0)),
    }
}

/// One member of the data directory, relative to it, with its `lstat` (for `pg_wal`, a symbolic
/// link `initdb --waldir` made, its target's).
pub struct Entry {
    pub path: PathBuf,
    pub meta: Metadata,
}

/// Every member of the data directory `dir` a base backup holds, each directory before what it
/// holds, in name order.
pub fn members(dir: &Path) -> DbResult<Vec<Entry>> {
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<Entry>) -> DbResult<()> {
    let here = dir.join(rel);
    let listing = match fs::read_dir(&here) {
        Ok(l) => l,
        // A database dropped while the walk goes: replay removes it anyway.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
            return Ok(());
        }
        Err(e) => return Err(DbError(format!("cannot list {}: {e}", here.display()))),
    };
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| DbError(format!("cannot list {}: {e}", here.display())))?;
        names.push(entry.file_name());
    }
    names.sort();
    let top = rel.as_os_str().is_empty();
    for name in names {
        let text = name.to_string_lossy();
        if SKIP_FILES.contains(&text.as_ref())
            || text.starts_with("pgsql_tmp")
            || text.starts_with("pg_internal.init")
        {
            continue;
        }
        let path = rel.join(&name);
        let full = dir.join(&path);
        let waldir = top && name == "pg_wal";
        let meta = match if waldir {
            fs::metadata(&full)
        } else {
            fs::symlink_metadata(&full)
        } {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DbError(format!("cannot read {}: {e}", full.display()))),
        };
        let is_dir = meta.is_dir();
        out.push(Entry {
            path: path.clone(),
            meta,
        });
        if !is_dir {
            continue;
        }
        if top && SKIP_CONTENTS.contains(&text.as_ref()) {
            // Archiving needs the status directory in place when the restored server starts.
            let status = full.join("archive_status");
            if waldir && let Ok(meta) = fs::symlink_metadata(&status) {
                out.push(Entry {
                    path: path.join("archive_status"),
                    meta,
                });
            }
            continue;
        }
        walk(dir, &path, out)?;
    }
    Ok(())
}

/// A file read to its end: its line in the manifest.
pub struct ReadFile {
    path: PathBuf,
    size: u64,
    mtime: i64,
    crc: u32,
}

impl ReadFile {
    /// The bytes read.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A file of [`members`] opened for reading its size at the walk; `None` when it vanished since.
pub fn open(dir: &Path, entry: &Entry) -> io::Result<Option<MemberReader>> {
    match File::open(dir.join(&entry.path)) {
        Ok(f) => Ok(Some(MemberReader {
            file: f.take(entry.meta.len()),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
            read: 0,
            path: entry.path.clone(),
            mtime: entry.meta.mtime(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What [`DataDirBackup::stop`] returns: the backup's end and the two files it adds.
pub struct Stopped {
    pub timeline: u32,
    pub start_lsn: Lsn,
    pub end_lsn: Lsn,
    /// The server's clock once the backup's WAL was archived.
    pub stop_time: chrono::DateTime<chrono::Utc>,
    pub backup_label: Vec<u8>,
    pub backup_manifest: Vec<u8>,
}

/// A backup under way on the server: walk [`DataDirBackup::entries`], read each file through
/// [`open`] to its end, then [`DataDirBackup::stop`] with what was read.
pub struct DataDirBackup {
    client: Client,
    dir: PathBuf,
    major: u32,
    segments: Segments,
    start_lsn: Lsn,
    /// Whether the server archives this backup's WAL: not a standby unless `archive_mode =
    /// always` (the server's own wait skips it as well).
    archives: bool,
}

impl DataDirBackup {
    /// Start the backup (with an immediate checkpoint) on the session `client`, whose server's
    /// data directory is `dir` (see [`not_the_servers`]).
    pub fn start(
        mut client: Client,
        dir: &Path,
        major: u32,
        segments: Segments,
    ) -> DbResult<DataDirBackup> {
        let sql = if major >= 15 {
            "SELECT pg_backup_start('bulwark', true)::text"
        } else {
            "SELECT pg_start_backup('bulwark', true, false)::text"
        };
        let archives: bool = client
            .query_one(
                "SELECT NOT pg_is_in_recovery() OR current_setting('archive_mode') = 'always'",
                &[],
            )?
            .get(0);
        let lsn: String = client
            .query_one(sql, &[])
            .map_err(|e| DbError::from(e).context("starting the backup"))?
            .get(0);
        Ok(DataDirBackup {
            client,
            dir: dir.to_path_buf(),
            major,
            segments,
            start_lsn: lsn.parse()?,
            archives,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every member to back up (see [`members`]).
    pub fn entries(&self) -> DbResult<Vec<Entry>> {
        members(&self.dir)
    }

    /// Stop the backup: wait until its WAL is archived (unless `interrupted` says to give up),
    /// and make its `backup_label` and the `backup_manifest` of the `files` read.
    pub fn stop(
        mut self,
        mut files: Vec<ReadFile>,
        interrupted: &dyn Fn() -> bool,
    ) -> DbResult<Stopped> {
        let sql = if self.major >= 15 {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)"
        };
        let row = self
            .client
            .query_one(sql, &[])
            .map_err(|e| DbError::from(e).context("stopping the backup"))?;
        let end_lsn: Lsn = row.get::<_, String>(0).parse()?;
        let label: String = row.get(1);
        let map: Option<String> = row.get(2);
        if map.is_some_and(|m| !m.trim().is_empty()) {
            return Err(DbError(
                "the cluster gained a tablespace during the backup: physical backups of such clusters \
                 are not supported yet (use method = \"logical\")"
                    .into(),
            ));
        }
        let timeline = label_timeline(&label)?;
        // The segment holding the last byte the backup needs (the server's XLByteToPrevSeg).
        let last = self
            .segments
            .name(timeline, self.segments.of(Lsn(end_lsn.0.saturating_sub(1))));
        if self.archives {
            self.wait_archived(&last, interrupted)?;
        }
        let stop_time = server_clock(&mut self.client)?;
        files.push(ReadFile {
            path: PathBuf::from("backup_label"),
            size: label.len() as u64,
            mtime: stop_time.timestamp(),
            crc: crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, label.as_bytes()) as u32,
        });
        let manifest = manifest(&files, timeline, self.start_lsn, end_lsn);
        Ok(Stopped {
            timeline,
            start_lsn: self.start_lsn,
            end_lsn,
            stop_time,
            backup_label: label.into_bytes(),
            backup_manifest: manifest,
        })
    }

    /// Wait until the server has archived WAL segment `name`, saying every minute what it waits
    /// for and what the archiver last failed on.
    fn wait_archived(&mut self, name: &str, interrupted: &dyn Fn() -> bool) -> DbResult<()> {
        let started = Instant::now();
        let mut said = Duration::ZERO;
        while archive_busy(&self.dir, name) {
            if interrupted() {
                return Err(DbError(format!(
                    "interrupted while waiting for WAL segment {name} to be archived"
                )));
            }
            if started.elapsed() >= said + Duration::from_secs(60) {
                said = started.elapsed();
                let failed: Option<String> = self
                    .client
                    .query_one("SELECT last_failed_wal FROM pg_stat_archiver", &[])
                    .ok()
                    .and_then(|r| r.get(0));
                tracing::warn!(
                    "the base backup still waits, after {}s, for WAL segment {name} to be archived \
                     (the archiver last failed on {}): check archive_command and the server's log",
                    said.as_secs(),
                    failed.as_deref().unwrap_or("nothing")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// Whether the server's archiver has yet to archive WAL file `name` of the data directory `dir`:
/// the server's own test (`XLogArchiveIsBusy`).
fn archive_busy(dir: &Path, name: &str) -> bool {
    let status = |ext: &str| {
        dir.join("pg_wal/archive_status")
            .join(format!("{name}.{ext}"))
            .exists()
    };
    if status("done") {
        return false;
    }
    if status("ready") {
        return true;
    }
    // The archiver may have just renamed .ready to .done; or a checkpoint removed the segment,
    // which it does only once the segment was archived.
    !status("done") && dir.join("pg_wal").join(name).exists()
}

/// A file of the data directory being read: counts and checksums what passes.
pub struct MemberReader {
    file: io::Take<File>,
    crc: crc_fast::Digest,
    read: u64,
    path: PathBuf,
    mtime: i64,
}

impl MemberReader {
    /// What was read, for the manifest.
    pub fn finish(self) -> ReadFile {
        ReadFile {
            path: self.path,
            size: self.read,
            mtime: self.mtime,
            crc: self.crc.finalize() as u32,
        }
    }
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The timeline a `backup_label` starts on.
fn label_timeline(label: &str) -> DbResult<u32> {
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE:"))
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| DbError("the server's backup_label names no START TIMELINE".into()))
}

/// A `backup_manifest` as PostgreSQL writes it (version 1): one line per file, the WAL range, and
/// the SHA-256 of every line before the last.
fn manifest(files: &[ReadFile], timeline: u32, start: Lsn, end: Lsn) -> Vec<u8> {
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n");
    for (i, f) in files.iter().enumerate() {
        let path = match f.path.to_str() {
            Some(p) => format!("\"Path\": {}", serde_json::Value::from(p)),
            None => format!(
                "\"Encoded-Path\": \"{}\"",
                hex::encode(f.path.as_os_str().as_bytes())
            ),
        };
        let modified = chrono::DateTime::from_timestamp(f.mtime, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S GMT");
        // PostgreSQL writes the checksum's bytes as they lie in memory.
        let crc = hex::encode(f.crc.to_ne_bytes());
        text += &format!(
            "{}{{ {path}, \"Size\": {}, \"Last-Modified\": \"{modified}\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{crc}\" }}\n",
            if i == 0 { "" } else { "," },
            f.size,
        );
    }
    text += &format!(
        "],\n\"WAL-Ranges\": [\n{{ \"Timeline\": {timeline}, \"Start-LSN\": \"{start}\", \"End-LSN\": \"{end}\" }}\n],\n"
    );
    let digest = Sha256::digest(text.as_bytes());
    text += &format!("\"Manifest-Checksum\": \"{}\"}}\n", hex::encode(digest));
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_checksum_covers_every_line_before_the_last() {
        let files = vec![ReadFile {
            path: PathBuf::from("base/1/1259"),
            size: 8192,
            mtime: 0,
            crc: 0xE306_9283,
        }];
        let m = manifest(&files, 1, Lsn(0x2000028), Lsn(0x2000100));
        let text = String::from_utf8(m).unwrap();
        assert!(text.ends_with("}\n"));
        let body_end = text[..text.len() - 1].rfind('\n').unwrap() + 1;
        let expected = hex::encode(Sha256::digest(&text.as_bytes()[..body_end]));
        assert!(text[body_end..].contains(&expected), "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["Files"][0]["Path"], "base/1/1259");
        assert_eq!(
            doc["Files"][0]["Checksum"],
            hex::encode(0xE306_9283u32.to_ne_bytes())
        );
        assert_eq!(doc["WAL-Ranges"][0]["Start-LSN"], "0/2000028");
    }

    #[test]
    fn crc32c_is_castagnolis() {
        // The check value of CRC-32C, the algorithm PostgreSQL names CRC32C.
        let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize() as u32, 0xE306_9283);
    }

    #[test]
    fn the_walk_leaves_out_what_pg_basebackup_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "base/1",
            "base/1/pgsql_tmp",
            "global",
            "pg_wal/archive_status",
            "pg_stat_tmp",
            "pg_subtrans",
            "pg_tblspc",
        ] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        for file in [
            "PG_VERSION",
            "postmaster.pid",
            "postmaster.opts",
            "backup_label",
            "postgresql.auto.conf",
            "postgresql.auto.conf.tmp",
            "base/1/1259",
            "base/1/1259_fsm",
            "base/1/pg_internal.init",
            "base/1/pgsql_tmp/pgsql_tmp123.0",
            "base/pgsql_tmp42",
            "global/pg_control",
            "pg_wal/000000010000000000000001",
            "pg_wal/archive_status/000000010000000000000001.done",
            "pg_stat_tmp/global.stat",
            "pg_subtrans/0000",
        ] {
            fs::write(d.join(file), b"x").unwrap();
        }
        let got: Vec<String> = members(d)
            .unwrap()
            .into_iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "PG_VERSION",
                "base",
                "base/1",
                "base/1/1259",
                "base/1/1259_fsm",
                "global",
                "global/pg_control",
                "pg_stat_tmp",
                "pg_subtrans",
                "pg_tblspc",
                "pg_wal",
                "pg_wal/archive_status",
                "postgresql.auto.conf",
            ]
        );
    }

    #[test]
    fn a_segment_is_archived_once_done_or_recycled() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("pg_wal/archive_status");
        fs::create_dir_all(&status).unwrap();
        let seg = "000000010000000000000005";
        fs::write(dir.path().join("pg_wal").join(seg), b"wal").unwrap();
        assert!(archive_busy(dir.path(), seg), "no status yet: not archived");
        fs::write(status.join(format!("{seg}.ready")), b"").unwrap();
        assert!(archive_busy(dir.path(), seg));
        fs::rename(
            status.join(format!("{seg}.ready")),
            status.join(format!("{seg}.done")),
        )
        .unwrap();
        assert!(!archive_busy(dir.path(), seg));
        fs::remove_file(status.join(format!("{seg}.done"))).unwrap();
        fs::remove_file(dir.path().join("pg_wal").join(seg)).unwrap();
        assert!(!archive_busy(dir.path(), seg), "recycled: archived before");
    }

    #[test]
    fn the_label_names_its_timeline() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000030000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                     START TIMELINE: 3\nLABEL: bulwark\n";
        assert_eq!(label_timeline(label).unwrap(), 3);
        assert!(label_timeline("LABEL: x\n").is_err());
    }
}
