//! Database backups and restores. A PostgreSQL backup stores the dump (streamed from `pg_dump`
//! and its snapshot, see `bulwark_source::db::postgres`) and `globals.sql`; a MariaDB/MySQL
//! backup the dump streamed from `mariadb-dump` (see `bulwark_source::db::mariadb::backup`); a
//! SQLite backup stores a consistent copy. Either records the database's facts and fingerprint in the snapshot's
//! `meta`, which restores and restore tests check against.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulwark_repo::lock::LockKind;
use bulwark_repo::{Id, MasterIndex, Node, NodeKind, Repository, Snapshot};
use bulwark_source::Patterns;
use bulwark_source::db::mariadb::{
    self, MariadbBackupOptions, MariadbDsn, MariadbFacts, MariadbTools,
};
use bulwark_source::db::postgres::{self as pg, PgBackupOptions, PgFacts, PgTools};
use bulwark_source::db::sqlite::{self, SqliteFacts};
use bulwark_source::db::{DbError, DbMeta, META_KEY};
use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;
use serde::Serialize;

use crate::backup::{BackupOptions, BackupReport, BackupSource, LateMeta, backup};
use crate::error::{Error, RepoError, Result};
use crate::progress::Progress;

/// A database error while backing up: the source failed, no snapshot was saved.
pub fn source_failed(e: DbError) -> Error {
    Error::Source(e.0)
}

/// A database error while restoring: the target failed, the snapshot is unharmed.
pub fn target_failed(e: DbError) -> Error {
    Error::Target(e.0)
}

pub enum DbSource {
    Postgres(PgBackupOptions),
    Sqlite(PathBuf),
    Mariadb(MariadbBackupOptions),
}

pub struct DbBackupOptions {
    pub source: DbSource,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<DateTime<FixedOffset>>,
    pub dataset: Option<String>,
}

pub struct DbBackupReport {
    pub backup: BackupReport,
    pub meta: DbMeta,
}

/// Back up a database: its consistent dump or copy, with its facts and fingerprint in `meta`.
pub fn backup_database(
    repo: &Repository,
    opts: DbBackupOptions,
    progress: &dyn Progress,
) -> Result<DbBackupReport> {
    start_database_backup(opts)?.store(repo, progress)
}

/// A database backup whose source is already producing its dump or copy, not yet stored.
///
/// Starting needs no repository, so a caller may open one (and derive its key) meanwhile.
/// Dropped unstored, it stops the dump: its producer's next write fails and ends it.
pub struct StartedDbBackup {
    streams: Vec<(String, Box<dyn Read + Send>)>,
    meta: DbMeta,
    /// A PostgreSQL dump's facts are complete once its stream has been read: the snapshot gets
    /// them then, and the report the same facts after.
    late_meta: Option<LateMeta>,
    streamed: Option<pg::StreamedFingerprint>,
    /// Held until the backup has read it: the SQLite copy lives in a temporary directory.
    _copy: Option<sqlite::SqliteCopy>,
    tags: Vec<String>,
    host: Option<String>,
    time: Option<DateTime<FixedOffset>>,
    dataset: Option<String>,
}

/// Start a database's dump or copy; see [`StartedDbBackup`].
pub fn start_database_backup(opts: DbBackupOptions) -> Result<StartedDbBackup> {
    let mut streams: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
    let mut copy = None;
    let mut late_meta: Option<LateMeta> = None;
    let mut streamed = None;
    let meta = match opts.source {
        DbSource::Postgres(o) => {
            let dump = pg::start_dump(&o).map_err(source_failed)?;
            if let Some(g) = dump.globals {
                streams.push(("globals.sql".into(), Box::new(io::Cursor::new(g))));
            }
            streams.push((dump.facts.dump_file.clone(), Box::new(dump.dump)));
            let (mut facts, fingerprint) = (dump.facts.clone(), dump.fingerprint.clone());
            late_meta = Some(Box::new(move || {
                fingerprint.complete(&mut facts).map_err(source_failed)?;
                Ok(BTreeMap::from([(
                    META_KEY.to_string(),
                    DbMeta::Postgres(facts).to_value(),
                )]))
            }));
            streamed = Some(dump.fingerprint);
            DbMeta::Postgres(dump.facts)
        }
        DbSource::Mariadb(o) => {
            let dump = mariadb::start_dump(&o).map_err(source_failed)?;
            streams.push((dump.facts.dump_file.clone(), Box::new(dump.dump)));
            DbMeta::Mariadb(dump.facts)
        }
        DbSource::Sqlite(path) => {
            let c = sqlite::consistent_copy(&path).map_err(source_failed)?;
            let file = File::open(&c.path)
                .map_err(|e| Error::io(format!("cannot read {}", c.path.display()), e))?;
            streams.push((c.facts.file.clone(), Box::new(file)));
            let meta = DbMeta::Sqlite(c.facts.clone());
            copy = Some(c);
            meta
        }
    };
    Ok(StartedDbBackup {
        streams,
        meta,
        late_meta,
        streamed,
        _copy: copy,
        tags: opts.tags,
        host: opts.host,
        time: opts.time,
        dataset: opts.dataset,
    })
}

impl StartedDbBackup {
    /// Read the dump or copy into a snapshot of `repo`.
    pub fn store(self, repo: &Repository, progress: &dyn Progress) -> Result<DbBackupReport> {
        let mut meta = self.meta;
        let report = backup(
            repo,
            BackupOptions {
                source: BackupSource::Streams(self.streams),
                excludes: Patterns::new(&[]).map_err(Error::Invalid)?,
                tags: self.tags,
                host: self.host,
                time: self.time,
                parent: None,
                dataset: self.dataset,
                meta: BTreeMap::from([(META_KEY.to_string(), meta.to_value())]),
                late_meta: self.late_meta,
                ..Default::default()
            },
            progress,
        )?;
        if let (Some(fingerprint), DbMeta::Postgres(facts)) = (&self.streamed, &mut meta) {
            fingerprint.complete(facts).map_err(source_failed)?;
        }
        Ok(DbBackupReport {
            backup: report,
            meta,
        })
    }
}

/// The snapshot `spec` (`latest` meaning the latest of `dataset`, if given) and its database facts.
pub fn find_db_snapshot(
    repo: &Repository,
    spec: &str,
    dataset: Option<&str>,
) -> Result<(Id, Snapshot, DbMeta)> {
    let (id, snap) = repo
        .find_snapshot(spec, |s| {
            dataset.is_none_or(|d| s.dataset.as_deref() == Some(d))
        })
        .map_err(|e| match (e, dataset) {
            (RepoError::NotFound { .. }, Some(d)) if spec == "latest" => RepoError::NotFound {
                what: format!("a snapshot of dataset '{d}'"),
            },
            (e, _) => e,
        })?;
    if let Some(d) = dataset
        && snap.dataset.as_deref() != Some(d)
    {
        return Err(Error::Invalid(format!(
            "snapshot {} belongs to dataset '{}', not '{d}'",
            id.short(),
            snap.dataset.as_deref().unwrap_or("")
        )));
    }
    let meta = DbMeta::from_meta(&snap.meta)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "snapshot {} is not a database backup (it records no database facts): restore it with --target",
                id.short()
            ))
        })?
        .map_err(|e| Error::corrupt(format!("snapshot {}", id.short()), e))?;
    Ok((id, snap, meta))
}

/// The file node `name` at the root of a snapshot.
pub fn snapshot_file(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    name: &str,
) -> Result<Node> {
    let tree = repo.load_tree(index, &snap.tree)?;
    tree.find(OsStr::new(name))
        .filter(|n| n.kind == NodeKind::File)
        .cloned()
        .ok_or_else(|| {
            Error::Repo(RepoError::NotFound {
                what: format!("file '{name}' in the snapshot"),
            })
        })
}

/// A file of a snapshot as a stream, its chunks fetched a few at a time in parallel: nothing is
/// staged on disk.
pub struct SnapshotFileReader<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    ids: Vec<Id>,
    next: usize,
    ready: VecDeque<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

const PREFETCH: usize = 8;

impl<'a> SnapshotFileReader<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a MasterIndex,
        node: &Node,
    ) -> SnapshotFileReader<'a> {
        SnapshotFileReader {
            repo,
            index,
            ids: node.content.clone(),
            next: 0,
            ready: VecDeque::new(),
            cur: Vec::new(),
            pos: 0,
        }
    }

    fn fetch(&mut self) -> bulwark_repo::Result<()> {
        let end = (self.next + PREFETCH).min(self.ids.len());
        let blobs: Vec<Vec<u8>> = self.ids[self.next..end]
            .par_iter()
            .map(|id| {
                let loc = self
                    .index
                    .lookup(id)
                    .ok_or_else(|| RepoError::corrupt(format!("blob {id}"), "not in the index"))?;
                self.repo.read_blob(&loc)
            })
            .collect::<bulwark_repo::Result<_>>()?;
        self.next = end;
        self.ready.extend(blobs);
        Ok(())
    }
}

impl Read for SnapshotFileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ready.is_empty() {
                if self.next == self.ids.len() {
                    return Ok(0);
                }
                self.fetch().map_err(io::Error::other)?;
            }
            self.cur = self.ready.pop_front().unwrap_or_default();
            self.pos = 0;
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Restore into a real target.

pub enum DbTarget {
    /// A database on a server; created if missing, and it must hold no tables.
    Postgres { dsn: String, create_roles: bool },
    /// A new SQLite file.
    Sqlite { path: PathBuf },
    /// A database on a MariaDB/MySQL server; created if missing, and it must hold nothing.
    Mariadb { dsn: String },
}

#[derive(Serialize, Debug, Default)]
pub struct DbRestoreReport {
    pub snapshot_id: String,
    pub dataset: Option<String>,
    pub kind: String,
    pub target: String,
    pub created_database: bool,
    pub created_roles: Vec<String>,
    pub duration_s: f64,
    /// Every table's row count (and checksum where recorded) matches the backup.
    pub verified: bool,
    pub differences: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn restore_database(
    repo: &Repository,
    spec: &str,
    dataset: Option<&str>,
    target: &DbTarget,
) -> Result<DbRestoreReport> {
    let started = Instant::now();
    let (id, snap, meta) = find_db_snapshot(repo, spec, dataset)?;
    if let DbTarget::Sqlite { path } = target
        && fs::symlink_metadata(path).is_ok()
    {
        return Err(Error::Invalid(format!(
            "{} exists: give a new path for --sqlite-target",
            path.display()
        )));
    }
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let mut report = DbRestoreReport {
        snapshot_id: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: meta.kind().into(),
        ..Default::default()
    };
    match (&meta, target) {
        (DbMeta::Postgres(f), DbTarget::Postgres { dsn, create_roles }) => {
            report.target = pg::redact(dsn);
            restore_postgres(repo, &index, &snap, f, dsn, *create_roles, &mut report)?;
        }
        (DbMeta::Mariadb(f), DbTarget::Mariadb { dsn }) => {
            let dsn = MariadbDsn::parse(dsn).map_err(source_failed)?;
            report.target = dsn.to_string();
            restore_mariadb(repo, &index, &snap, f, &dsn, &mut report)?;
        }
        (DbMeta::Sqlite(f), DbTarget::Sqlite { path }) => {
            report.target = path.display().to_string();
            restore_sqlite(repo, &index, &snap, f, path, &mut report)?;
        }
        (m, _) => {
            return Err(Error::Invalid(format!(
                "snapshot {} holds a {} database: use --{}-target",
                id.short(),
                m.kind(),
                m.kind()
            )));
        }
    }
    report.verified = report.differences.is_empty();
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn restore_postgres(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    f: &PgFacts,
    dsn: &str,
    create_roles: bool,
    report: &mut DbRestoreReport,
) -> Result<()> {
    let tools = PgTools::locate();
    tools.program("psql").map_err(target_failed)?;
    let dump = snapshot_file(repo, index, snap, &f.dump_file)?;
    let db = pg::dbname(dsn).map_err(target_failed)?;
    let mut admin = pg::connect_other_db(dsn, "postgres")
        .or_else(|_| pg::connect_other_db(dsn, "template1"))
        .map_err(target_failed)?;
    let major = pg::server_major(&mut admin).map_err(target_failed)?;
    if major < f.major {
        return Err(Error::Invalid(format!(
            "the target runs PostgreSQL {major}, older than the backup's {} ({}): a dump restores only into \
             the same or a newer major version",
            f.major, f.server_version
        )));
    }
    if major > f.major {
        report.warnings.push(format!(
            "restoring a PostgreSQL {} dump into PostgreSQL {major}",
            f.major
        ));
    }
    let missing_ext = pg::missing_extensions(&mut admin, &f.extensions).map_err(target_failed)?;
    if !missing_ext.is_empty() {
        return Err(Error::Invalid(format!(
            "the target cannot restore this backup: {}",
            missing_ext.join("; ")
        )));
    }
    let log_dir = tempfile::Builder::new()
        .prefix("bulwark-restore-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let log = log_dir.path().join("restore.log");
    let missing = pg::missing_roles(&mut admin, &f.roles).map_err(target_failed)?;
    if !missing.is_empty() {
        if !create_roles {
            return Err(Error::Invalid(format!(
                "the dump needs roles the target lacks: {} (pass --create-roles to create them from the \
                 backup's globals.sql, or as NOLOGIN roles where it has none)",
                missing.join(", ")
            )));
        }
        if let Some(g) = &f.globals_file {
            let node = snapshot_file(repo, index, snap, g)?;
            let mut r = SnapshotFileReader::new(repo, index, &node);
            let admin_dsn = pg::with_dbname(dsn, "postgres");
            let msgs = pg::psql(&tools, &admin_dsn, &mut r, &log, false).map_err(target_failed)?;
            for e in pg::unexpected_errors(&msgs) {
                report.warnings.push(format!("globals.sql: {e}"));
            }
        }
        let still = pg::missing_roles(&mut admin, &f.roles).map_err(target_failed)?;
        pg::create_roles(&mut admin, &still).map_err(target_failed)?;
        report.created_roles = missing;
    }
    match pg::database_tables(&mut admin, dsn, &db).map_err(target_failed)? {
        Some(0) => {}
        Some(n) => {
            return Err(Error::Invalid(format!(
                "database {db} on the target already holds {n} tables: restore into a new or empty database"
            )));
        }
        None => {
            pg::create_database(&mut admin, &db, f).map_err(target_failed)?;
            report.created_database = true;
        }
    }
    let mut reader = SnapshotFileReader::new(repo, index, &dump);
    if let Err(e) = pg::psql(&tools, dsn, &mut reader, &log, true) {
        let kept = log_dir.keep();
        let state = if report.created_database && pg::drop_database(&mut admin, &db, major).is_ok()
        {
            format!("the new database {db} was dropped again")
        } else {
            format!("database {db} is left partly restored")
        };
        return Err(Error::Target(format!(
            "restoring into {db} failed ({state}): {e} (psql's messages: {})",
            kept.join("restore.log").display()
        )));
    }
    report.differences = pg::verify(dsn, f).map_err(target_failed)?;
    Ok(())
}

fn restore_mariadb(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    f: &MariadbFacts,
    dsn: &MariadbDsn,
    report: &mut DbRestoreReport,
) -> Result<()> {
    let tools = MariadbTools::locate();
    tools.program(mariadb::CLIENT).map_err(target_failed)?;
    let dump = snapshot_file(repo, index, snap, &f.dump_file)?;
    let db = &dsn.database;
    let mut admin = mariadb::connect(&dsn.with_database("")).map_err(target_failed)?;
    let (problems, warnings) = mariadb::compatibility(&mut admin, f).map_err(target_failed)?;
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "the target cannot restore this backup: {}",
            problems.join("; ")
        )));
    }
    report.warnings.extend(warnings);
    match mariadb::missing_accounts(&mut admin, &f.definers) {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => report.warnings.push(format!(
            "the target lacks accounts that views, routines, triggers or events name as DEFINER: {} \
             (those objects fail to run until they exist)",
            missing.join(", ")
        )),
        Err(e) => report
            .warnings
            .push(format!("could not check the DEFINER accounts: {e}")),
    }
    match mariadb::database_contents(&mut admin, db).map_err(target_failed)? {
        Some(0) => {}
        Some(n) => {
            return Err(Error::Invalid(format!(
                "database {db} on the target already holds {n} tables, views, routines or events: restore into \
                 a new or empty database"
            )));
        }
        None => {
            mariadb::create_database(&mut admin, db, f).map_err(target_failed)?;
            report.created_database = true;
        }
    }
    let log_dir = tempfile::Builder::new()
        .prefix("bulwark-restore-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let log = log_dir.path().join("restore.log");
    let mut reader = SnapshotFileReader::new(repo, index, &dump);
    if let Err(e) = mariadb::run_client(&tools, dsn, &mut reader, &log) {
        let kept = log_dir.keep();
        let state = if report.created_database && mariadb::drop_database(&mut admin, db).is_ok() {
            format!("the new database {db} was dropped again")
        } else {
            format!("database {db} is left partly restored")
        };
        return Err(Error::Target(format!(
            "restoring into {db} failed ({state}): {e} (the client's messages: {})",
            kept.join("restore.log").display()
        )));
    }
    let mut conn = mariadb::connect(dsn).map_err(target_failed)?;
    report.differences = mariadb::verify(&mut conn, db, f).map_err(target_failed)?;
    Ok(())
}

fn restore_sqlite(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    f: &SqliteFacts,
    path: &Path,
    report: &mut DbRestoreReport,
) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::Invalid(format!(
            "{} exists: give a new path for --sqlite-target",
            path.display()
        )));
    }
    let node = snapshot_file(repo, index, snap, &f.file)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.bulwark-restore"));
    let result = (|| -> Result<()> {
        // Owner-only: the restored database holds backed-up data; its owner widens the mode.
        let mut out = File::create(&tmp)
            .and_then(|f| {
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                Ok(f)
            })
            .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
        let mut reader = SnapshotFileReader::new(repo, index, &node);
        io::copy(&mut reader, &mut out)
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        out.flush()
            .and_then(|_| out.sync_all())
            .map_err(|e| Error::io("cannot sync", e))?;
        let conn = sqlite::open(&tmp).map_err(target_failed)?;
        let integrity = sqlite::integrity(&conn, false).map_err(target_failed)?;
        if integrity != "ok" {
            return Err(Error::corrupt(
                "the restored database",
                format!("integrity_check: {integrity}"),
            ));
        }
        let restored = sqlite::fingerprint(&conn).map_err(target_failed)?;
        report.differences = bulwark_source::db::compare(&f.tables, &restored);
        drop(conn);
        fs::rename(&tmp, path)
            .map_err(|e| Error::io(format!("cannot move the restore to {}", path.display()), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbname_rewrites() {
        assert_eq!(
            pg::with_dbname("postgres://a@h:5/x?sslmode=disable", "postgres"),
            "postgres://a@h:5/postgres?sslmode=disable"
        );
        assert_eq!(
            pg::with_dbname("postgres://a@h", "postgres"),
            "postgres://a@h/postgres"
        );
        assert_eq!(
            pg::with_dbname("host=/tmp dbname=x", "postgres"),
            "host=/tmp dbname=x dbname='postgres'"
        );
    }
}
