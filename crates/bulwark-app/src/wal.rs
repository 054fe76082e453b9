//! PostgreSQL physical datasets at the application level: the repository `wal-push` and
//! `wal-fetch` open from a policy file (never its ledger: PostgreSQL's account runs them),
//! archiving one file, asynchronous archiving through a spool, heartbeats, and the newest
//! archived segment that `status` judges the RPO by.
//!
//! # Asynchronous archiving
//! With `wal_async = true`, `wal-push` acknowledges from a spool directory (private, 0700, owned
//! by PostgreSQL's account) while one background pusher per dataset archives every file
//! PostgreSQL has marked ready (`pg_wal/archive_status/*.ready`), several at a time, with the
//! repository opened once. For each file durable in the repository the pusher writes
//! `ok/<name>` holding the file's BLAKE3 hash; `wal-push` exits 0 only when that marker names
//! the very bytes of its file, so a stale or forged marker never acknowledges other content.
//! A failure is written to `error` and makes every waiting `wal-push` fail with its message,
//! so PostgreSQL keeps the file and retries; the pusher retries too, and stops by itself once
//! nothing is asked of it for a while. The spool holds no WAL: losing it costs a re-push.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bulwark_policy::config::{Dataset, DatasetKind, Method};
use bulwark_policy::due::Due;
use bulwark_repo::Repository;
use bulwark_repo::wal::{Pushed, WalArchive, is_wal_file_name, stream_id};
use bulwark_source::db::physical;
use bulwark_source::db::postgres as pg;
use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::credentials::{Credentials, read_password_file};
use crate::error::{Error, Result};
use crate::workspace::{PolicyFile, Workspace, base_of};

/// A physical dataset's repository, opened from the policy file alone.
pub struct WalTarget {
    pub repo: Repository,
    pub dataset: Dataset,
    /// The policy file's directory (relative paths are relative to it).
    pub base: PathBuf,
}

/// A physical dataset of a policy file, and the file's directory.
pub fn physical_dataset(policy: &Path, dataset: &str) -> Result<(PolicyFile, Dataset, PathBuf)> {
    let file = PolicyFile::read(policy)?;
    let base = base_of(policy);
    let d = file
        .config
        .datasets
        .get(dataset)
        .cloned()
        .ok_or_else(|| Error::NoSuchDataset {
            name: dataset.to_string(),
            file: policy.to_path_buf(),
        })?;
    if d.kind != DatasetKind::Postgres || d.method != Method::Physical {
        return Err(Error::Invalid(format!(
            "dataset '{dataset}' is not a PostgreSQL dataset with method = \"physical\""
        )));
    }
    Ok((file, d, base))
}

/// The spool of asynchronous archiving of dataset `d`.
pub fn spool_dir(d: &Dataset, base: &Path) -> PathBuf {
    match &d.wal_spool {
        Some(s) => crate::credentials::resolve(base, s),
        None => Path::new(bulwark_policy::config::DEFAULT_WAL_SPOOL)
            .join(d.name.replace(|c: char| c == '/' || c.is_control(), "_")),
    }
}

impl WalTarget {
    pub fn open(policy: &Path, dataset: &str, credentials: &Credentials) -> Result<WalTarget> {
        let (file, d, base) = physical_dataset(policy, dataset)?;
        let r = file
            .config
            .repositories
            .get(&d.repository)
            .ok_or_else(|| Error::Invalid(format!("no repository '{}'", d.repository)))?;
        let location = if r.url.contains("://") {
            r.url.clone()
        } else {
            crate::credentials::resolve(&base, &r.url)
                .display()
                .to_string()
        };
        let fail = |e: bulwark_repo::Error| Error::repository(&r.name, e);
        let backend = bulwark_repo::backend::open_location(&location, false).map_err(fail)?;
        bulwark_repo::repository::describe_header(backend.as_ref()).map_err(fail)?;
        let credential = credentials.for_repository(r, &base)?;
        let repo = Repository::open(backend, &credential).map_err(fail)?;
        Ok(WalTarget {
            repo,
            dataset: d,
            base,
        })
    }

    /// The archive of the cluster whose data directory is `data_dir`.
    pub fn archive(&self, data_dir: &Path) -> Result<WalArchive<'_>> {
        let sysid = physical::data_directory_system_identifier(data_dir)
            .map_err(|e| Error::Invalid(e.0))?;
        Ok(WalArchive::new(
            &self.repo,
            stream_id(&self.repo, &self.dataset.name, sysid),
        ))
    }
}

/// The data directory of a WAL file PostgreSQL names (`pg_wal/NAME`, relative to the data
/// directory it runs `archive_command` in).
pub fn data_dir_of(wal_path: &Path) -> PathBuf {
    let absolute = std::path::absolute(wal_path).unwrap_or_else(|_| wal_path.to_path_buf());
    match absolute.parent() {
        Some(dir) if dir.file_name().is_some_and(|n| n == "pg_wal") => {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        _ => std::env::current_dir().unwrap_or_default(),
    }
}

/// The file name of a WAL path, checked.
pub fn wal_name(wal_path: &Path) -> Result<String> {
    let name = wal_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_wal_file_name(&name) {
        return Err(Error::Invalid(format!(
            "{} is not a WAL file PostgreSQL archives",
            wal_path.display()
        )));
    }
    Ok(name)
}

/// Archive one file now; returns its name and what happened.
pub fn push_now(target: &WalTarget, wal_path: &Path) -> Result<(String, Pushed)> {
    let name = wal_name(wal_path)?;
    let data = fs::read(wal_path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", wal_path.display())))?;
    let archive = target.archive(&data_dir_of(wal_path))?;
    let pushed = archive
        .push(&name, &data)
        .map_err(|e| Error::repository(&target.dataset.repository, e))?;
    Ok((name, pushed))
}

// ---------------------------------------------------------------------------------------------
// The spool.

pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Open (creating) a spool directory: it must belong to this account and be private.
    pub fn open(dir: &Path) -> Result<Spool> {
        let fail = |e: std::io::Error| {
            Error::Invalid(format!(
                "cannot use the WAL spool {}: {e} (set wal_spool to a directory PostgreSQL's account owns)",
                dir.display()
            ))
        };
        fs::create_dir_all(dir.join("ok")).map_err(fail)?;
        let meta = fs::metadata(dir).map_err(fail)?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::Invalid(format!(
                "the WAL spool {} belongs to uid {}, not to this account (uid {me}): refusing to trust it",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    fn ok_path(&self, name: &str) -> PathBuf {
        self.dir.join("ok").join(name)
    }

    /// Whether `name` was archived with exactly the content hashed `hash`.
    pub fn acknowledged(&self, name: &str, hash: &str) -> bool {
        fs::read_to_string(self.ok_path(name)).is_ok_and(|h| h.trim() == hash)
    }

    fn record_ok(&self, name: &str, hash: &str) -> std::io::Result<()> {
        let tmp = self.dir.join("ok").join(format!(".{name}.tmp"));
        fs::write(&tmp, hash)?;
        fs::rename(&tmp, self.ok_path(name))
    }

    /// Record a failure every waiting `wal-push` reports (the pusher's own, such as a
    /// repository it cannot open).
    pub fn record_error(&self, message: &str) {
        let tmp = self.dir.join(".error.tmp");
        if fs::write(&tmp, message).is_ok() {
            let _ = fs::rename(&tmp, self.dir.join("error"));
        }
    }

    fn clear_error(&self) {
        let _ = fs::remove_file(self.dir.join("error"));
    }

    /// The pusher's last failure, if it happened at or after `since`.
    pub fn error_since(&self, since: SystemTime) -> Option<String> {
        let path = self.dir.join("error");
        let modified = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        (modified >= since)
            .then(|| fs::read_to_string(&path).ok())
            .flatten()
    }

    /// Say that a `wal-push` waits: the pusher stops once nobody has for a while.
    pub fn touch_asked(&self) {
        let _ = fs::write(self.dir.join("asked"), b"");
    }

    fn asked_age(&self) -> Duration {
        fs::metadata(self.dir.join("asked"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or(Duration::MAX)
    }

    /// The pusher's lock, if no pusher holds it.
    fn try_lock(&self) -> Result<Option<File>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("pusher.lock"))
            .map_err(|e| Error::Invalid(format!("cannot open the spool's lock: {e}")))?;
        // SAFETY: flock on a descriptor we own; the lock lives as long as the file.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((rc == 0).then_some(f))
    }

    /// Whether a pusher is running now.
    pub fn pusher_running(&self) -> bool {
        matches!(self.try_lock(), Ok(None))
    }
}

/// Wait until the pusher acknowledges `wal_path` (see the module docs); `start_pusher` starts
/// one when none runs.
pub fn push_via_spool(
    spool: &Spool,
    wal_path: &Path,
    timeout: Duration,
    start_pusher: &dyn Fn() -> Result<()>,
) -> Result<String> {
    let name = wal_name(wal_path)?;
    let data = fs::read(wal_path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", wal_path.display())))?;
    let hash = blake3::hash(&data).to_hex().to_string();
    drop(data);
    let since = SystemTime::now() - Duration::from_millis(10);
    let started = Instant::now();
    let mut last_start: Option<Instant> = None;
    loop {
        spool.touch_asked();
        if spool.acknowledged(&name, &hash) {
            return Ok(name);
        }
        if let Some(e) = spool.error_since(since) {
            return Err(Error::Invalid(format!(
                "archiving {name} failed: {}",
                e.trim()
            )));
        }
        if last_start.is_none_or(|t| t.elapsed() > Duration::from_secs(2))
            && !spool.pusher_running()
        {
            start_pusher()?;
            last_start = Some(Instant::now());
        }
        if started.elapsed() > timeout {
            return Err(Error::Invalid(format!(
                "{name} was not archived within {}s (the pusher's last word: {})",
                timeout.as_secs(),
                spool
                    .error_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_else(|| "none".into())
            )));
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Files at once per round of the pusher.
const PUSH_BATCH: usize = 16;

/// The background pusher: archive every ready file of `pg_wal` until nobody asks any more.
/// Returns at once when another pusher runs.
pub fn run_pusher(target: &WalTarget, spool: &Spool, pg_wal: &Path, threads: usize) -> Result<()> {
    let Some(_lock) = spool.try_lock()? else {
        return Ok(());
    };
    let data_dir = pg_wal.parent().map(Path::to_path_buf).unwrap_or_default();
    let archive = target.archive(&data_dir)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the pusher's threads: {e}")))?;
    let status = pg_wal.join("archive_status");
    let mut idle_since = Instant::now();
    loop {
        if spool.asked_age() > Duration::from_secs(30) {
            return Ok(());
        }
        let mut ready: Vec<String> = fs::read_dir(&status)
            .map_err(|e| Error::Invalid(format!("cannot list {}: {e}", status.display())))?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".ready")
                    .map(str::to_string)
            })
            .filter(|n| is_wal_file_name(n))
            .collect();
        // Markers of files PostgreSQL no longer waits for go.
        if let Ok(entries) = fs::read_dir(spool.dir.join("ok")) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') && !ready.contains(&n) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        ready.retain(|n| !spool.ok_path(n).exists());
        // History files first, as PostgreSQL's own archiver does: recovery needs them to choose.
        ready.sort_by_key(|n| (!n.ends_with(".history"), n.clone()));
        if ready.is_empty() {
            if idle_since.elapsed() > Duration::from_secs(10) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        idle_since = Instant::now();
        ready.truncate(PUSH_BATCH);
        let results: Vec<std::result::Result<(), String>> = pool.install(|| {
            ready
                .par_iter()
                .map(|name| {
                    let path = pg_wal.join(name);
                    let data = fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    archive
                        .push(name, &data)
                        .map_err(|e| format!("repository '{}': {e}", target.dataset.repository))?;
                    let hash = blake3::hash(&data).to_hex().to_string();
                    spool
                        .record_ok(name, &hash)
                        .map_err(|e| format!("cannot write the spool: {e}"))
                })
                .collect()
        });
        match results.into_iter().find_map(|r| r.err()) {
            Some(e) => {
                tracing::error!("{e}");
                spool.record_error(&e);
                std::thread::sleep(Duration::from_millis(500));
            }
            None => spool.clear_error(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Heartbeats and status.

/// The source connection of a PostgreSQL dataset, with its password file's password.
pub fn source_dsn(ws: &Workspace, d: &Dataset) -> Result<String> {
    let source = d.source.clone().unwrap_or_default();
    Ok(match &d.password_file {
        Some(f) => pg::with_password(&source, &read_password_file(&ws.resolve(f))?),
        None => source,
    })
}

/// Whether a heartbeat is due: its interval has passed since the newest in the source (asked
/// of the source; when it cannot be asked, due, so the run says why).
pub fn heartbeat_due(ws: &Workspace, d: &Dataset, now: DateTime<Utc>) -> Option<Due> {
    let every = d.heartbeat?;
    let newest = source_dsn(ws, d).ok().and_then(|dsn| {
        let mut c = pg::connect(&dsn).ok()?;
        let exists: bool = c
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&physical::HEARTBEAT_TABLE],
            )
            .ok()?
            .get(0);
        if !exists {
            return Some(None);
        }
        c.query_one(
            &format!(
                "SELECT (extract(epoch FROM max(at)) * 1000000)::int8 FROM {}",
                physical::HEARTBEAT_TABLE
            ),
            &[],
        )
        .ok()
        .map(|r| r.get::<_, Option<i64>>(0).map(physical::from_micros))
    });
    let every_c = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    Some(match newest.flatten() {
        Some(last) if last + every_c > now => Due::At { at: last + every_c },
        Some(last) => Due::now(format!(
            "the newest heartbeat is from {}",
            last.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        None => Due::now("no heartbeat on record"),
    })
}

/// Write one heartbeat row into the dataset's source.
pub fn heartbeat(ws: &Workspace, d: &Dataset) -> Result<DateTime<Utc>> {
    let dsn = source_dsn(ws, d)?;
    physical::write_heartbeat(&dsn).map_err(|e| Error::Invalid(format!("heartbeat: {}", e.0)))
}

/// When the newest WAL segment of a physical dataset was archived (`None`: not physical, none,
/// or its repository could not be read).
pub fn last_wal(ws: &Workspace, d: &Dataset) -> Option<DateTime<Utc>> {
    if d.method != Method::Physical {
        return None;
    }
    let repo = ws.repository(&d.repository).ok()?;
    match bulwark_ops::wal::newest_archived(&repo, &d.name) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("dataset {}: cannot read its archived WAL: {e}", d.name);
            None
        }
    }
}
