//! Database restore tests: PostgreSQL into a throwaway cluster (`initdb --data-checksums`, socket
//! only, no archiving, no fsync) run by an unprivileged account, or a scratch database on a server
//! given by the caller; MariaDB/MySQL into a throwaway server (`mariadb-install-db`, socket only,
//! no binary log, no durability, event scheduler off) run by an unprivileged account; SQLite into
//! a temporary file. A failing test keeps the scratch server's logs (never its data).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulwark_repo::lock::LockKind;
use bulwark_repo::{Id, MasterIndex, Repository, Snapshot};
use bulwark_source::db::mariadb::scratch::ScratchServer;
use bulwark_source::db::mariadb::{self, MariadbFacts, MariadbTools};
use bulwark_source::db::postgres::{self as pg, PgFacts, PgTools};
use bulwark_source::db::scratch::ScratchCluster;
use bulwark_source::db::sqlite::{self, SqliteFacts};
use bulwark_source::db::{DbError, DbMeta, dump};

use super::{RestoreTestOptions, RestoreTestReport, summarise};
use crate::database::{SnapshotFileReader, snapshot_file};
use crate::error::{Error, Result};
use crate::progress::{Progress, Unit};

/// Test the database snapshot `id`, whose facts are `meta`.
pub(super) fn test(
    repo: &Repository,
    id: &Id,
    snap: &Snapshot,
    meta: &DbMeta,
    opts: &RestoreTestOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    let mut report = RestoreTestReport {
        snapshot_id: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: meta.kind().into(),
        snapshot_time: snap.time.to_rfc3339(),
        ..Default::default()
    };
    let work = tempfile::Builder::new()
        .prefix("bulwark-restore-test-")
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::io(
                format!("cannot create a scratch directory in {}", scratch.display()),
                e,
            )
        })?;
    let started = Instant::now();
    // Held throughout: nothing the test reads may be pruned meanwhile.
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let source = Fetch {
        repo,
        index: &index,
        snap,
        progress,
    };
    match meta {
        DbMeta::Postgres(f) => postgres_test(
            &source,
            id,
            f,
            opts,
            scratch,
            work.path(),
            started,
            &mut report,
        ),
        DbMeta::Sqlite(f) => sqlite_test(&source, f, opts, work.path(), started, &mut report),
        DbMeta::Mariadb(f) => mariadb_test(&source, f, opts, work.path(), started, &mut report),
    }
    if report.duration_s == 0.0 {
        report.duration_s = started.elapsed().as_secs_f64();
    }
    Ok(report)
}

/// Where the snapshot's files come from.
struct Fetch<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    snap: &'a Snapshot,
    progress: &'a dyn Progress,
}

impl Fetch<'_> {
    /// Copy the snapshot's files `names` into `dir` (every chunk decrypted and authenticated).
    /// Returns how many bytes were fetched.
    fn files(&self, names: &[&str], dir: &Path) -> std::result::Result<u64, String> {
        let nodes = names
            .iter()
            .map(|n| snapshot_file(self.repo, self.index, self.snap, n).map_err(|e| e.to_string()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let total = nodes.iter().map(|n| n.size).sum();
        let counter = self.progress.start("fetch", Unit::Bytes, Some(total));
        for (name, node) in names.iter().zip(&nodes) {
            let path = dir.join(name);
            let mut out = std::fs::File::create(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut reader = SnapshotFileReader::new(self.repo, self.index, node);
            let n = std::io::copy(&mut reader, &mut out).map_err(|e| format!("{name}: {e}"))?;
            if n != node.size {
                return Err(format!(
                    "{name}: {n} bytes read back, {} in the snapshot",
                    node.size
                ));
            }
            counter.inc(n);
        }
        Ok(total)
    }
}

/// Where the restore goes: a throwaway cluster, or a scratch database on a given server.
enum Scratch {
    Cluster(ScratchCluster),
    Server {
        dsn: String,
        admin: pg::driver::Client,
        major: u32,
        log_dir: PathBuf,
    },
}

impl Scratch {
    fn dsn(&self, db: &str) -> String {
        match self {
            Scratch::Cluster(c) => c.dsn(db),
            Scratch::Server { dsn, .. } => pg::with_dbname(dsn, db),
        }
    }

    fn major(&self) -> u32 {
        match self {
            Scratch::Cluster(c) => c.major(),
            Scratch::Server { major, .. } => *major,
        }
    }

    fn log_dir(&self) -> PathBuf {
        match self {
            Scratch::Cluster(c) => c.root().to_path_buf(),
            Scratch::Server { log_dir, .. } => log_dir.clone(),
        }
    }

    fn admin(&mut self) -> std::result::Result<&mut pg::driver::Client, DbError> {
        match self {
            Scratch::Server { admin, .. } => Ok(admin),
            Scratch::Cluster(_) => Err(DbError::new("no admin connection kept for a cluster")),
        }
    }
}

fn prepare(
    f: &PgFacts,
    scratch_server: Option<&str>,
    scratch: &Path,
) -> std::result::Result<Scratch, String> {
    match scratch_server {
        None => {
            let tools = PgTools::locate();
            let (version, major) = tools.version("postgres").map_err(|e| e.0)?;
            if major != f.major {
                return Err(format!(
                    "incompatible: the backup is of PostgreSQL {} ({}), the local programs are {version}; \
                     set BULWARK_PG_BINDIR to a PostgreSQL {} bin directory, or use --scratch-postgres",
                    f.major, f.server_version, f.major
                ));
            }
            ScratchCluster::start_in(&tools, Some(scratch))
                .map(Scratch::Cluster)
                .map_err(|e| e.0)
        }
        Some(dsn) => {
            let mut admin = pg::connect_other_db(dsn, "postgres")
                .or_else(|_| pg::connect_other_db(dsn, "template1"))
                .map_err(|e| e.0)?;
            let major = pg::server_major(&mut admin).map_err(|e| e.0)?;
            if major != f.major {
                return Err(format!(
                    "incompatible: the backup is of PostgreSQL {} ({}), the scratch server runs {major}",
                    f.major, f.server_version
                ));
            }
            let log_dir = tempfile::Builder::new()
                .prefix("bulwark-restore-test-log-")
                .tempdir_in(scratch)
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?
                .keep();
            Ok(Scratch::Server {
                dsn: dsn.to_string(),
                admin,
                major,
                log_dir,
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn postgres_test(
    source: &Fetch,
    id: &Id,
    f: &PgFacts,
    opts: &RestoreTestOptions,
    scratch: &Path,
    work: &Path,
    started: Instant,
    report: &mut RestoreTestReport,
) {
    // The scratch target is prepared while the dump is fetched.
    let (fetched, prepared) = std::thread::scope(|s| {
        let prep = s.spawn(|| {
            let t = Instant::now();
            (
                prepare(f, opts.scratch_postgres.as_deref(), scratch),
                t.elapsed(),
            )
        });
        let mut names = vec![f.dump_file.as_str()];
        names.extend(f.globals_file.as_deref());
        let fetched = source.files(&names, work);
        if let Ok(n) = &fetched {
            report.bytes = *n;
        }
        report.phase("fetch", started.elapsed());
        let prepared = prep.join().unwrap_or_else(|_| {
            (
                Err("preparing the scratch target panicked".into()),
                Duration::ZERO,
            )
        });
        (fetched, prepared)
    });
    report.phase("prepare", prepared.1);
    let mut scratch = match prepared.0 {
        Ok(s) => Some(s),
        Err(e) => {
            let name = if e.starts_with("incompatible") {
                "compatibility"
            } else {
                "scratch"
            };
            report.check(name, false, e);
            None
        }
    };
    if let Err(e) = &fetched {
        report.check(
            "fetch",
            false,
            format!("the snapshot could not be read back: {e}"),
        );
    }
    let dump = work.join(&f.dump_file);
    if fetched.is_ok() {
        match dump::check_trailer(&dump) {
            Ok(Ok(())) => report.check(
                "dump-complete",
                true,
                "the dump ends with bulwark's completion line",
            ),
            Ok(Err(why)) => report.check("dump-complete", false, why),
            Err(e) => report.check("dump-complete", false, e.0),
        }
    }
    let Some(scratch_ref) = scratch.as_mut() else {
        return;
    };
    if fetched.is_ok() {
        let db = match scratch_ref {
            Scratch::Cluster(_) => f.database.clone(),
            Scratch::Server { .. } => format!("bulwark_restore_test_{}", &id.to_hex()[..12]),
        };
        run_postgres_checks(f, opts, work, &dump, scratch_ref, &db, report);
        // The measured restore time ends with the last check, before any clean-up.
        report.duration_s = started.elapsed().as_secs_f64();
        if let Scratch::Server { major, .. } = scratch_ref {
            let major = *major;
            if let Ok(admin) = scratch_ref.admin()
                && let Err(e) = pg::drop_database(admin, &db, major)
            {
                report
                    .warnings
                    .push(format!("could not drop the scratch database {db}: {e}"));
            }
        }
    }
    let passed = report.checks.iter().all(|c| c.passed);
    let log_dir = scratch_ref.log_dir();
    match scratch.take() {
        Some(Scratch::Cluster(mut c)) => {
            if !passed {
                c.keep_log();
                report.logs.push(c.log_path().display().to_string());
                let restore_log = c.root().join("restore.log");
                if restore_log.exists() {
                    report.logs.push(restore_log.display().to_string());
                }
            }
            drop(c);
        }
        Some(Scratch::Server { .. }) => {
            if passed {
                let _ = std::fs::remove_dir_all(&log_dir);
            } else {
                report
                    .logs
                    .push(log_dir.join("restore.log").display().to_string());
            }
        }
        None => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn run_postgres_checks(
    f: &PgFacts,
    opts: &RestoreTestOptions,
    work: &Path,
    dump: &Path,
    scratch: &mut Scratch,
    db: &str,
    report: &mut RestoreTestReport,
) {
    let t_restore = Instant::now();
    let tools = match scratch {
        Scratch::Cluster(c) => c.tools().clone(),
        Scratch::Server { .. } => PgTools::locate(),
    };
    let log = scratch.log_dir().join("restore.log");
    let shared_server = matches!(scratch, Scratch::Server { .. });
    // Compatibility: major version (checked when preparing), extensions, encoding and collation.
    let compat = (|| -> std::result::Result<(), String> {
        let admin_dsn = scratch.dsn("postgres");
        let mut admin = pg::connect(&admin_dsn).map_err(|e| e.0)?;
        let missing = pg::missing_extensions(&mut admin, &f.extensions).map_err(|e| e.0)?;
        if !missing.is_empty() {
            return Err(format!("incompatible: {}", missing.join("; ")));
        }
        if shared_server {
            // Left over by an interrupted test: ours, by its name.
            pg::drop_database(&mut admin, db, scratch.major()).map_err(|e| e.0)?;
        }
        pg::create_database(&mut admin, db, f).map_err(|e| format!("incompatible: {e}"))?;
        Ok(())
    })();
    match compat {
        Ok(()) => report.check(
            "compatibility",
            true,
            format!(
                "PostgreSQL {} as at backup; {} extensions available; encoding {}, collation {}",
                scratch.major(),
                f.extensions.len(),
                f.encoding,
                f.collate
            ),
        ),
        Err(e) => {
            report.check("compatibility", false, e);
            return;
        }
    }
    // Roles first: the dump's ownership and grants name them. On a throwaway cluster, the backup's own globals.sql; on a shared server, only
    // the missing roles, as NOLOGIN (replaying globals.sql there could change its passwords).
    let admin_dsn = scratch.dsn("postgres");
    if let Some(g) = f.globals_file.as_ref().filter(|_| !shared_server) {
        match std::fs::File::open(work.join(g)) {
            Ok(mut file) => match pg::psql(&tools, &admin_dsn, &mut file, &log, false) {
                Ok(msgs) => {
                    for e in pg::unexpected_errors(&msgs) {
                        report.warnings.push(format!("globals.sql: {e}"));
                    }
                }
                Err(e) => report.warnings.push(format!("globals.sql: {e}")),
            },
            Err(e) => report.warnings.push(format!("globals.sql: {e}")),
        }
    }
    let roles = pg::connect(&admin_dsn).and_then(|mut c| {
        let missing = pg::missing_roles(&mut c, &f.roles)?;
        pg::create_roles(&mut c, &missing)
    });
    if let Err(e) = roles {
        report.warnings.push(format!("roles: {e}"));
    }
    let target = scratch.dsn(db);
    let restored = std::fs::File::open(dump)
        .map_err(|e| DbError::new(format!("cannot open the fetched dump: {e}")))
        .and_then(|mut file| pg::psql(&tools, &target, &mut file, &log, true));
    report.phase("restore", t_restore.elapsed());
    let t_checks = Instant::now();
    match restored {
        Ok(_) => report.check(
            "restore",
            true,
            format!("psql restored {} without error", f.dump_file),
        ),
        Err(e) => {
            report.check("restore", false, e.0);
            report.phase("checks", t_checks.elapsed());
            return;
        }
    }
    // Integrity (pg_amcheck over every heap and B-tree index) and fidelity (every table's
    // exact row count, and checksum where recorded) each keep one server backend busy: they
    // run side by side, and report in that order.
    let verified = std::thread::scope(|s| {
        let fidelity = s.spawn(|| pg::verify(&target, f));
        if !tools.has("pg_amcheck") {
            report.skipped(
                "integrity",
                "pg_amcheck is not installed: heap and index checks skipped",
            );
        } else {
            let amcheck_available = pg::connect(&target).and_then(|mut c| {
                Ok(c.query_opt(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'",
                    &[],
                )?
                .is_some())
            });
            match amcheck_available {
                Ok(false) => report.skipped(
                    "integrity",
                    "the amcheck extension is not available: heap and index checks skipped",
                ),
                Err(e) => report.check("integrity", false, e.0),
                Ok(true) => match pg::amcheck(&tools, &target) {
                    Ok(None) => report.check(
                        "integrity",
                        true,
                        "pg_amcheck --heapallindexed: every heap page and B-tree index is consistent",
                    ),
                    Ok(Some(found)) => report.check(
                        "integrity",
                        false,
                        format!("pg_amcheck found corruption: {found}"),
                    ),
                    Err(e) if matches!(scratch, Scratch::Server { .. }) => report.skipped(
                        "integrity",
                        format!("pg_amcheck could not run on the scratch server: {e}"),
                    ),
                    Err(e) => report.check("integrity", false, e.0),
                },
            }
        }
        fidelity
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    match verified {
        Ok(diffs) if diffs.is_empty() => {
            let sums = f.tables.values().filter(|t| t.checksum.is_some()).count();
            let rows: u64 = f.tables.values().map(|t| t.rows).sum();
            report.check(
                "fidelity",
                true,
                format!(
                    "{} tables, {rows} rows and {} large objects match the backup ({sums} tables by checksum)",
                    f.tables.len(),
                    f.large_objects.rows
                ),
            );
        }
        Ok(diffs) => report.check("fidelity", false, summarise(&diffs)),
        Err(e) => report.check("fidelity", false, e.0),
    }
    // The dataset's assertions.
    for sql in &opts.check_sql {
        let r = pg::connect(&target).and_then(|mut c| pg::assertion(&mut c, sql));
        match r {
            Ok((ok, detail)) => report.check(format!("check-sql: {sql}"), ok, detail),
            Err(e) => report.check(format!("check-sql: {sql}"), false, e.0),
        }
    }
    report.phase("checks", t_checks.elapsed());
}

fn sqlite_test(
    source: &Fetch,
    f: &SqliteFacts,
    opts: &RestoreTestOptions,
    work: &Path,
    started: Instant,
    report: &mut RestoreTestReport,
) {
    let fetched = source.files(&[f.file.as_str()], work);
    if let Ok(n) = &fetched {
        report.bytes = *n;
    }
    report.phase("fetch", started.elapsed());
    if let Err(e) = fetched {
        report.check(
            "fetch",
            false,
            format!("the snapshot could not be read back: {e}"),
        );
        return;
    }
    let t = Instant::now();
    let path = work.join(&f.file);
    let conn = sqlite::open(&path);
    report.phase("restore", t.elapsed());
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            report.check("restore", false, e.0);
            return;
        }
    };
    report.check(
        "restore",
        true,
        format!("{} restored to a temporary file", f.file),
    );
    let t = Instant::now();
    match sqlite::integrity(&conn, false) {
        Ok(s) if s == "ok" => report.check("integrity", true, "PRAGMA integrity_check: ok"),
        Ok(s) => report.check("integrity", false, format!("PRAGMA integrity_check: {s}")),
        Err(e) => report.check("integrity", false, e.0),
    }
    match sqlite::fingerprint(&conn) {
        Ok(restored) => {
            let diffs = bulwark_source::db::compare(&f.tables, &restored);
            if diffs.is_empty() {
                let rows: u64 = f.tables.values().map(|t| t.rows).sum();
                report.check(
                    "fidelity",
                    true,
                    format!(
                        "{} tables and {rows} rows match the backup, by count and checksum",
                        f.tables.len()
                    ),
                );
            } else {
                report.check("fidelity", false, summarise(&diffs));
            }
        }
        Err(e) => report.check("fidelity", false, e.0),
    }
    for sql in &opts.check_sql {
        match sqlite::assertion(&conn, sql) {
            Ok((ok, detail)) => report.check(format!("check-sql: {sql}"), ok, detail),
            Err(e) => report.check(format!("check-sql: {sql}"), false, e.0),
        }
    }
    report.phase("checks", t.elapsed());
}

fn mariadb_test(
    source: &Fetch,
    f: &MariadbFacts,
    opts: &RestoreTestOptions,
    work: &Path,
    started: Instant,
    report: &mut RestoreTestReport,
) {
    if opts.scratch_postgres.is_some() {
        report.warnings.push(
            "--scratch-postgres does not apply to a MariaDB backup: a throwaway server was used"
                .into(),
        );
    }
    // The scratch server starts while the dump is fetched.
    let (fetched, prepared) = std::thread::scope(|s| {
        let prep = s.spawn(|| {
            let t = Instant::now();
            let server = ScratchServer::start(&MariadbTools::locate(), f.lower_case_table_names);
            (server, t.elapsed())
        });
        let fetched = source.files(&[f.dump_file.as_str()], work);
        if let Ok(n) = &fetched {
            report.bytes = *n;
        }
        report.phase("fetch", started.elapsed());
        let prepared = prep.join().unwrap_or_else(|_| {
            (
                Err(DbError::new("starting the scratch server panicked")),
                Duration::ZERO,
            )
        });
        (fetched, prepared)
    });
    report.phase("prepare", prepared.1);
    let mut server = match prepared.0 {
        Ok(s) => Some(s),
        Err(e) => {
            report.check("scratch", false, e.0);
            None
        }
    };
    let dump = work.join(&f.dump_file);
    match &fetched {
        Err(e) => report.check(
            "fetch",
            false,
            format!("the snapshot could not be read back: {e}"),
        ),
        Ok(_) => match dump::check_trailer(&dump) {
            Ok(Ok(())) => report.check(
                "dump-complete",
                true,
                "the dump ends with bulwark's completion line",
            ),
            Ok(Err(why)) => report.check("dump-complete", false, why),
            Err(e) => report.check("dump-complete", false, e.0),
        },
    }
    let Some(s) = server.as_mut() else {
        return;
    };
    if fetched.is_ok() {
        run_mariadb_checks(f, opts, &dump, s, report);
        // The measured restore time ends with the last check, before any clean-up.
        report.duration_s = started.elapsed().as_secs_f64();
    }
    if !report.checks.iter().all(|c| c.passed) {
        s.keep_log();
        report.logs.push(s.log_path().display().to_string());
        let restore_log = s.root().join("restore.log");
        if restore_log.exists() {
            report.logs.push(restore_log.display().to_string());
        }
    }
}

fn run_mariadb_checks(
    f: &MariadbFacts,
    opts: &RestoreTestOptions,
    dump: &Path,
    server: &ScratchServer,
    report: &mut RestoreTestReport,
) {
    let t_restore = Instant::now();
    let db = &f.database;
    // Compatibility: version and collations; then the database and the DEFINER accounts.
    let compat = (|| -> std::result::Result<Vec<String>, String> {
        let mut admin = server.connect("").map_err(|e| e.0)?;
        let (problems, warnings) = mariadb::compatibility(&mut admin, f).map_err(|e| e.0)?;
        if !problems.is_empty() {
            return Err(format!("incompatible: {}", problems.join("; ")));
        }
        mariadb::create_database(&mut admin, db, f).map_err(|e| format!("incompatible: {e}"))?;
        let missing = mariadb::missing_accounts(&mut admin, &f.definers).map_err(|e| e.0)?;
        mariadb::create_definers(&mut admin, &missing, db).map_err(|e| e.0)?;
        Ok(warnings)
    })();
    match compat {
        Ok(warnings) => {
            report.warnings.extend(warnings);
            report.check(
                "compatibility",
                true,
                format!(
                    "{} for a {} {} backup; {} collations available; {} DEFINER accounts",
                    server.version(),
                    f.flavor,
                    mariadb::major_minor(f.version_num),
                    f.collations.len(),
                    f.definers.len()
                ),
            );
        }
        Err(e) => {
            report.check("compatibility", false, e);
            return;
        }
    }
    let tools = MariadbTools::locate();
    let log = server.root().join("restore.log");
    let restored = std::fs::File::open(dump)
        .map_err(|e| DbError::new(format!("cannot open the fetched dump: {e}")))
        .and_then(|mut file| mariadb::run_client(&tools, &server.dsn(db), &mut file, &log));
    report.phase("restore", t_restore.elapsed());
    let t_checks = Instant::now();
    match restored {
        Ok(_) => report.check(
            "restore",
            true,
            format!("the mariadb client restored {} without error", f.dump_file),
        ),
        Err(e) => {
            report.check("restore", false, e.0);
            report.phase("checks", t_checks.elapsed());
            return;
        }
    }
    // Integrity: every table read and checked against its indexes.
    match server
        .connect(db)
        .and_then(|mut c| mariadb::check_tables(&mut c, db))
    {
        Ok((n, problems)) if problems.is_empty() => report.check(
            "integrity",
            true,
            format!("CHECK TABLE … EXTENDED: {n} tables OK"),
        ),
        Ok((_, problems)) => report.check("integrity", false, summarise(&problems)),
        Err(e) => report.check("integrity", false, e.0),
    }
    // Fidelity: every table's exact row count and checksum, and the schema objects.
    match server
        .connect(db)
        .and_then(|mut c| mariadb::verify(&mut c, db, f))
    {
        Ok(diffs) if diffs.is_empty() => {
            let sums = f.tables.values().filter(|t| t.checksum.is_some()).count();
            let rows: u64 = f.tables.values().map(|t| t.rows).sum();
            let objects: u64 = f.objects.values().sum();
            report.check(
                "fidelity",
                true,
                format!(
                    "{} tables, {rows} rows and {objects} views, routines, triggers, events and sequences match \
                     the backup ({sums} tables by checksum)",
                    f.tables.len()
                ),
            );
        }
        Ok(diffs) => report.check("fidelity", false, summarise(&diffs)),
        Err(e) => report.check("fidelity", false, e.0),
    }
    for sql in &opts.check_sql {
        let r = server
            .connect(db)
            .and_then(|mut c| mariadb::assertion(&mut c, sql));
        match r {
            Ok((ok, detail)) => report.check(format!("check-sql: {sql}"), ok, detail),
            Err(e) => report.check(format!("check-sql: {sql}"), false, e.0),
        }
    }
    report.phase("checks", t_checks.elapsed());
}
