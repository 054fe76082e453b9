//! Databases on the command line: `backup --postgres/--sqlite`, `restore --postgres-target/
//! --sqlite-target` and `restore-test`.

use std::path::PathBuf;

use bulwark_ops::Progress;
use bulwark_ops::database::{
    DbBackupOptions, DbSource, DbTarget, backup_database, restore_database,
};
use bulwark_ops::restore_test::{RestoreTestOptions, restore_test};
use bulwark_source::db::DbMeta;
use bulwark_source::db::postgres::{PgBackupOptions, PgTools};
use clap::Args;
use serde_json::json;

use crate::cli::{BackupArgs, Global, RestoreArgs};
use crate::commands::{emit, open};
use crate::failure::Failure;
use crate::{CliResult, show_progress};

/// Database sources for `backup`.
#[derive(Args, Clone, Default)]
pub struct DbBackupArgs {
    /// Back up a PostgreSQL database (postgres://USER@HOST/DB or key=value): a consistent pg_dump,
    /// its roles, and every table's row count and checksum taken in the dump's snapshot
    #[arg(long, value_name = "DSN", conflicts_with_all = ["sqlite", "stdin_name"])]
    pub postgres: Option<String>,
    /// Back up a live SQLite database file: a consistent online copy, fingerprinted
    #[arg(long, value_name = "PATH", conflicts_with = "stdin_name")]
    pub sqlite: Option<PathBuf>,
    /// Checksum the rows of tables up to this size; larger ones get exact row counts only
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub db_checksum_max_mib: u64,
    /// With --postgres: leave out the roles and tablespaces (pg_dumpall --globals-only)
    #[arg(long, requires = "postgres")]
    pub no_globals: bool,
}

impl DbBackupArgs {
    pub fn wanted(&self) -> bool {
        self.postgres.is_some() || self.sqlite.is_some()
    }
}

/// Database targets for `restore`.
#[derive(Args, Clone, Default)]
pub struct DbRestoreArgs {
    /// Restore a PostgreSQL snapshot into this database (created if missing; it must hold no tables)
    #[arg(long, value_name = "DSN", conflicts_with_all = ["target", "sqlite_target"])]
    pub postgres_target: Option<String>,
    /// Restore a SQLite snapshot to this new file
    #[arg(long, value_name = "PATH", conflicts_with = "target")]
    pub sqlite_target: Option<PathBuf>,
    /// With `latest`: the latest snapshot of this dataset
    #[arg(long)]
    pub dataset: Option<String>,
    /// Create the roles the dump needs and the target lacks (from the backup's globals.sql, else NOLOGIN)
    #[arg(long, requires = "postgres_target")]
    pub create_roles: bool,
}

impl DbRestoreArgs {
    pub fn wanted(&self) -> bool {
        self.postgres_target.is_some() || self.sqlite_target.is_some() || self.dataset.is_some()
    }
}

#[derive(Args)]
pub struct RestoreTestArgs {
    /// Snapshot id (8+ hex digits) or `latest`
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this dataset
    #[arg(long)]
    pub dataset: Option<String>,
    /// SQL that must return true on the restored database (repeatable)
    #[arg(long = "check-sql", value_name = "SQL")]
    pub check_sql: Vec<String>,
    /// Restore into a scratch database on this PostgreSQL server instead of a throwaway local cluster
    #[arg(long, value_name = "DSN")]
    pub scratch_postgres: Option<String>,
}

pub fn backup_cmd(g: &Global, a: BackupArgs) -> CliResult<i32> {
    let db = &a.db;
    if !a.paths.is_empty() {
        return Err(Failure::usage(
            "paths and --postgres/--sqlite exclude each other",
            "back up files and databases in separate snapshots",
        ));
    }
    if !a.exclude.is_empty() {
        return Err(Failure::usage(
            "--exclude does not apply to database backups",
            "leave it out",
        ));
    }
    let time = crate::commands::parse_time(a.time.as_deref())?;
    let source = match (&db.postgres, &db.sqlite) {
        (Some(dsn), _) => DbSource::Postgres(PgBackupOptions {
            dsn: dsn.clone(),
            checksum_max_bytes: db.db_checksum_max_mib.saturating_mul(1 << 20),
            globals: !db.no_globals,
            tools: PgTools::locate(),
        }),
        (None, Some(path)) => DbSource::Sqlite(path.clone()),
        (None, None) => {
            return Err(Failure::usage(
                "nothing to back up",
                "give --postgres DSN or --sqlite PATH",
            ));
        }
    };
    let repo = open(g)?;
    let progress = Progress::bytes(show_progress(g), None, "backup");
    let report = backup_database(
        &repo,
        DbBackupOptions {
            source,
            tags: a.tag,
            host: a.host,
            time,
            dataset: a.dataset,
        },
        &progress,
    )?;
    let b = &report.backup;
    let s = &b.summary;
    let tables = report.meta.tables();
    let rows: u64 = tables.values().map(|t| t.rows).sum();
    let mut facts = json!({ "kind": report.meta.kind(), "tables": tables.len(), "rows": rows });
    let text_facts = match &report.meta {
        DbMeta::Postgres(f) => {
            facts["database"] = json!(f.database);
            facts["server_version"] = json!(f.server_version);
            facts["database_size"] = json!(f.database_size);
            facts["large_objects"] = json!(f.large_objects.rows);
            facts["globals"] = json!(f.globals_file.is_some());
            facts["globals_note"] = json!(f.globals_note);
            let mut t = format!(
                "PostgreSQL {} database {}: {} tables, {rows} rows, {} large objects",
                f.server_version,
                f.database,
                tables.len(),
                f.large_objects.rows
            );
            if let Some(n) = &f.globals_note {
                t += &format!("\nglobals: {n}");
            }
            t
        }
        DbMeta::Mariadb(f) => {
            facts["database"] = json!(f.database);
            facts["server_version"] = json!(f.server_version);
            facts["read_lock_ms"] = json!(f.read_lock_ms);
            format!(
                "{} {} database {}: {} tables, {rows} rows",
                f.flavor,
                f.server_version,
                f.database,
                tables.len()
            )
        }
        DbMeta::Sqlite(f) => {
            facts["source"] = json!(f.source);
            facts["bytes"] = json!(f.bytes);
            facts["quick_check"] = json!(f.quick_check);
            format!(
                "SQLite database {}: {} tables, {rows} rows",
                f.source,
                tables.len()
            )
        }
    };
    // The shape of `backup --json` for files, plus what was learnt about the database.
    let mut doc =
        json!({ "snapshot_id": b.snapshot_id.to_hex(), "parent": b.parent.map(|p| p.to_hex()) });
    if let (Some(d), serde_json::Value::Object(sum)) = (
        doc.as_object_mut(),
        serde_json::to_value(s).expect("summary"),
    ) {
        d.extend(sum);
        d.insert("unreadable".into(), json!([]));
        d.insert("database".into(), facts);
    }
    emit(g, &doc, || {
        format!(
            "snapshot {} saved\n{text_facts}\ndump: {} read, {} added ({} stored) in {:.1}s",
            b.snapshot_id.short(),
            s.total_bytes,
            s.bytes_added,
            s.bytes_added_stored,
            s.duration_s
        )
    });
    Ok(0)
}

pub fn restore_cmd(g: &Global, a: RestoreArgs) -> CliResult<i32> {
    let db = &a.db;
    let target = match (&db.postgres_target, &db.sqlite_target) {
        (Some(dsn), _) => DbTarget::Postgres {
            dsn: dsn.clone(),
            create_roles: db.create_roles,
        },
        (None, Some(path)) => DbTarget::Sqlite { path: path.clone() },
        (None, None) => {
            return Err(Failure::usage(
                "--dataset selects database snapshots: give --postgres-target or --sqlite-target",
                "to restore files, name the snapshot by id with --target",
            ));
        }
    };
    if !a.include.is_empty() {
        return Err(Failure::usage(
            "--include does not apply to database restores",
            "leave it out",
        ));
    }
    let repo = open(g)?;
    let report = restore_database(&repo, &a.snapshot, db.dataset.as_deref(), &target)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    emit(g, &report, || {
        let mut t = format!(
            "restored snapshot {} ({}) into {} in {:.1}s",
            &report.snapshot_id[..8],
            report.kind,
            report.target,
            report.duration_s
        );
        if report.verified {
            t += "\nverified: every table's row count and checksum match the backup";
        }
        t
    });
    if !report.verified {
        for d in &report.differences {
            eprintln!("differs: {d}");
        }
        return Err(Failure::new(
            1,
            format!(
                "the restored database differs from the backup in {} places",
                report.differences.len()
            ),
            Some("run `bulwark restore-test` on the snapshot; the target was left as restored"),
        ));
    }
    Ok(0)
}

pub fn restore_test_cmd(g: &Global, a: RestoreTestArgs) -> CliResult<i32> {
    let repo = open(g)?;
    let report = restore_test(
        &repo,
        &RestoreTestOptions {
            spec: a.snapshot,
            dataset: a.dataset,
            check_sql: a.check_sql,
            scratch_postgres: a.scratch_postgres,
            show_progress: show_progress(g),
        },
    )?;
    emit(g, &report, || {
        let mut t = format!(
            "restore test of snapshot {} ({}{}): {} in {:.1}s",
            &report.snapshot_id[..8],
            report.kind,
            report
                .dataset
                .as_deref()
                .map(|d| format!(", dataset {d}"))
                .unwrap_or_default(),
            if report.passed { "PASSED" } else { "FAILED" },
            report.duration_s
        );
        let phases: Vec<String> = ["fetch", "prepare", "restore", "checks"]
            .iter()
            .filter_map(|k| report.phases.get(*k).map(|v| format!("{k} {v:.1}s")))
            .collect();
        t += &format!("\nphases: {}", phases.join(", "));
        for c in &report.checks {
            let mark = match (c.passed, c.skipped) {
                (_, true) => "skipped",
                (true, false) => "ok",
                (false, false) => "FAILED",
            };
            t += &format!("\n  {mark:<7} {}: {}", c.name, c.detail);
        }
        for w in &report.warnings {
            t += &format!("\nwarning: {w}");
        }
        t
    });
    if report.passed {
        return Ok(0);
    }
    for c in report.failed_checks() {
        eprintln!("restore test failed: {}: {}", c.name, c.detail);
    }
    for l in &report.logs {
        eprintln!("log kept: {l}");
    }
    Ok(1)
}
