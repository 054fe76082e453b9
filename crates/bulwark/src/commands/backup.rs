//! `bulwark backup`: files and directories, standard input or a command's output as one file,
//! or a database (`--postgres`, `--sqlite`) with its fingerprint.

use std::io::Read;
use std::path::PathBuf;

use bulwark_ops::backup::{BackupOptions, BackupSource, CACHEDIR_TAG, Filters, backup};
use bulwark_ops::database::{DbBackupOptions, DbSource, start_database_backup};
use bulwark_source::Patterns;
use bulwark_source::db::DbMeta;
use bulwark_source::db::mariadb::{MariadbBackupOptions, MariadbTools};
use bulwark_source::db::physical::BaseBackupRead;
use bulwark_source::db::postgres::{PgBackupOptions, PgTools};
use bulwark_source::stream::CommandStream;
use serde::Serialize;
use serde_json::json;

use super::{emit, human_bytes, open, parse_time, plural, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::{Failure, PARTIAL};

#[derive(clap::Args)]
pub struct Args {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching a glob: `/…` is anchored at the root, anything else matches at any
    /// depth (`*.tmp`, `share/doc`); `*` stays in one component, `**` crosses any number
    #[arg(long, short = 'e')]
    pub exclude: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long)]
    pub iexclude: Vec<String>,
    /// Read --exclude patterns from this file, one a line (# comments, blank lines ignored)
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Read --iexclude patterns from this file
    #[arg(long, value_name = "FILE")]
    pub iexclude_file: Vec<PathBuf>,
    /// Leave out directories holding a CACHEDIR.TAG with the standard signature
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out directories holding a file of this name (NAME:HEADER: only when it starts with HEADER)
    #[arg(long, value_name = "NAME[:HEADER]")]
    pub exclude_if_present: Vec<String>,
    /// Leave out files larger than this (e.g. 500M, 2GiB)
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Read the paths to back up from this file, one a line (# comments, blank lines ignored)
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Stay on the file system of each path: a mount point below it is stored empty
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read everything and say what would be stored, and how much, without writing anything
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long)]
    pub tag: Vec<String>,
    /// Host name to record (default: this host's)
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot time (RFC 3339), for importing history
    #[arg(long)]
    pub time: Option<String>,
    /// Parent snapshot for change detection (default: latest of the same host and paths)
    #[arg(long)]
    pub parent: Option<String>,
    /// Dataset name to record with the snapshot
    #[arg(long)]
    pub dataset: Option<String>,
    /// Back up standard input as a file with this name
    #[arg(long)]
    pub stdin_name: Option<String>,
    /// With --stdin-name: back up the output of the command after `--` instead of stdin
    #[arg(long, requires = "stdin_name")]
    pub stdin_from_command: bool,
    /// The command for --stdin-from-command
    #[arg(last = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Database sources.
#[derive(clap::Args, Clone, Default)]
pub struct DbArgs {
    /// Back up a PostgreSQL database (postgres://USER@HOST/DB or key=value): a consistent pg_dump,
    /// its roles, and every table's row count and checksum taken in the dump's snapshot
    #[arg(long, value_name = "DSN", conflicts_with_all = ["sqlite", "stdin_name"])]
    pub postgres: Option<String>,
    /// Back up a live SQLite database file: a consistent online copy, fingerprinted
    #[arg(long, value_name = "PATH", conflicts_with_all = ["stdin_name", "postgres"])]
    pub sqlite: Option<PathBuf>,
    /// Back up a MariaDB or MySQL database (mysql://USER@HOST:PORT/DB, or ?socket=PATH): a
    /// consistent dump and a fingerprint taken in the same snapshot
    #[arg(long, value_name = "DSN", conflicts_with_all = ["stdin_name", "postgres", "sqlite"])]
    pub mariadb: Option<String>,
    /// Checksum the rows of tables up to this size; larger ones get exact row counts only
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub db_checksum_max_mib: u64,
    /// With --postgres: leave out the roles and tablespaces (pg_dumpall --globals-only)
    #[arg(long, requires = "postgres")]
    pub no_globals: bool,
    /// With --postgres and --dataset: a base backup of the whole cluster, for point-in-time
    /// recovery with the WAL `wal-push` archives
    #[arg(long, requires_all = ["postgres", "dataset"])]
    pub physical: bool,
    /// With --physical: auto, direct or pg_basebackup. `direct` reads the data directory itself
    /// (on the database host), `pg_basebackup` streams it, `auto` reads directly when the server
    /// runs here and its files are readable
    #[arg(
        long,
        value_name = "HOW",
        requires = "physical",
        default_value = "auto"
    )]
    pub base_backup: BaseBackupRead,
}

#[derive(Serialize)]
struct BackupJson<'a> {
    snapshot_id: String,
    parent: Option<String>,
    #[serde(flatten)]
    summary: &'a bulwark_repo::Summary,
    unreadable: &'a [String],
    changed_while_read: &'a [String],
    warnings: &'a [String],
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if a.db.postgres.is_some() || a.db.sqlite.is_some() || a.db.mariadb.is_some() {
        return database(g, a);
    }
    let source = match &a.stdin_name {
        Some(name) => {
            if !a.paths.is_empty() {
                return Err(Failure::usage(
                    "paths and --stdin-name exclude each other",
                    "back up one or the other",
                ));
            }
            let reader: Box<dyn Read + Send> = if a.stdin_from_command {
                Box::new(CommandStream::spawn(&a.command).map_err(|e| {
                    Failure::new(
                        1,
                        e.to_string(),
                        Some("give the command after `--`, e.g. -- pg_dump mydb"),
                    )
                })?)
            } else {
                Box::new(std::io::stdin())
            };
            BackupSource::Stream {
                name: name.clone(),
                reader,
            }
        }
        None => {
            let mut paths = a.paths.clone();
            for file in &a.files_from {
                paths.extend(
                    lines_of(file, "--files-from")?
                        .into_iter()
                        .map(PathBuf::from),
                );
            }
            if paths.is_empty() {
                return Err(Failure::usage(
                    "nothing to back up",
                    "give paths, --files-from FILE, or --stdin-name NAME to read stdin",
                ));
            }
            BackupSource::Paths(paths)
        }
    };
    let time = parse_time(a.time.as_deref())?;
    let (mut exact, mut folded) = (a.exclude.clone(), a.iexclude.clone());
    for file in &a.exclude_file {
        exact.extend(lines_of(file, "--exclude-file")?);
    }
    for file in &a.iexclude_file {
        folded.extend(lines_of(file, "--iexclude-file")?);
    }
    let excludes = Patterns::with_case_insensitive(&exact, &folded)
        .map_err(|e| Failure::usage(e, "see --help for the pattern syntax"))?;
    let mut filters = Filters {
        if_present: a
            .exclude_if_present
            .iter()
            .map(|spec| match spec.split_once(':') {
                Some((name, header)) => (name.into(), Some(header.as_bytes().to_vec())),
                None => (spec.into(), None),
            })
            .collect(),
        larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(bulwark_policy::parse_size)
            .transpose()
            .map_err(|e| {
                Failure::usage(
                    format!("bad --exclude-larger-than: {e}"),
                    "e.g. 500M or 2GiB",
                )
            })?,
        one_file_system: a.one_file_system,
    };
    if a.exclude_caches {
        let (name, signature) = CACHEDIR_TAG;
        filters
            .if_present
            .push((name.into(), Some(signature.as_bytes().to_vec())));
    }
    let repo = open(g)?;
    let report = backup(
        &repo,
        BackupOptions {
            source,
            excludes,
            filters,
            dry_run: a.dry_run,
            tags: a.tag,
            host: a.host,
            time,
            parent: a.parent,
            dataset: a.dataset,
            ..Default::default()
        },
        progress(g),
    )?;
    let s = &report.summary;
    if a.dry_run {
        emit(
            g,
            &json!({ "dry_run": true, "summary": s, "unreadable": &report.unreadable }),
            || {
                format!(
                    "dry run, nothing written
files: {} new, {} changed, {} unmodified
would add: {} ({} stored)",
                    s.files_new,
                    s.files_changed,
                    s.files_unmodified,
                    human_bytes(s.bytes_added),
                    human_bytes(s.bytes_added_stored),
                )
            },
        );
        return Ok(if report.unreadable.is_empty() {
            0
        } else {
            PARTIAL
        });
    }
    emit(
        g,
        &BackupJson {
            snapshot_id: report.snapshot_id.to_hex(),
            parent: report.parent.map(|p| p.to_hex()),
            summary: s,
            unreadable: &report.unreadable,
            changed_while_read: &report.changed_while_read,
            warnings: &report.warnings,
        },
        || {
            format!(
                "snapshot {} saved\nfiles: {} new, {} changed, {} unmodified\nadded: {} ({} stored) in {:.1}s",
                report.snapshot_id.short(),
                s.files_new,
                s.files_changed,
                s.files_unmodified,
                human_bytes(s.bytes_added),
                human_bytes(s.bytes_added_stored),
                s.duration_s
            )
        },
    );
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for c in &report.changed_while_read {
        eprintln!("changed while read: {c}");
    }
    for u in &report.unreadable {
        eprintln!("unreadable: {u}");
    }
    if !report.changed_while_read.is_empty() {
        eprintln!(
            "warning: {} changed while they were read; they are stored as read and may be inconsistent",
            plural(report.changed_while_read.len(), "file", "files")
        );
    }
    if !report.unreadable.is_empty() {
        eprintln!(
            "warning: {} could not be read; the snapshot holds everything else",
            plural(report.unreadable.len(), "item", "items")
        );
    }
    if report.unreadable.is_empty() && report.changed_while_read.is_empty() {
        Ok(0)
    } else {
        Ok(PARTIAL)
    }
}

/// The lines of a list file (`--files-from`, `--exclude-file`): blank lines and `#` comments
/// left out, surrounding spaces trimmed.
fn lines_of(path: &std::path::Path, flag: &str) -> CliResult<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(
            format!("cannot read {flag} {}: {e}", path.display()),
            "give a readable text file, one entry a line",
        )
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn database(g: &Global, a: Args) -> CliResult<i32> {
    if a.db.physical {
        return super::physical::backup(g, a);
    }
    let db = &a.db;
    if !a.paths.is_empty() {
        return Err(Failure::usage(
            "paths and --postgres/--sqlite/--mariadb exclude each other",
            "back up files and databases in separate snapshots",
        ));
    }
    if !a.exclude.is_empty() {
        return Err(Failure::usage(
            "--exclude does not apply to database backups",
            "leave it out",
        ));
    }
    let time = parse_time(a.time.as_deref())?;
    let checksum_max_bytes = db.db_checksum_max_mib.saturating_mul(1 << 20);
    let source = match (&db.postgres, &db.sqlite, &db.mariadb) {
        (Some(dsn), _, _) => DbSource::Postgres(PgBackupOptions {
            dsn: dsn.clone(),
            checksum_max_bytes,
            globals: !db.no_globals,
            tools: PgTools::locate(),
        }),
        (None, Some(path), _) => DbSource::Sqlite(path.clone()),
        (None, None, Some(dsn)) => DbSource::Mariadb(MariadbBackupOptions {
            dsn: dsn.clone(),
            checksum_max_bytes,
            tools: MariadbTools::locate(),
        }),
        (None, None, None) => {
            return Err(Failure::usage(
                "nothing to back up",
                "give --postgres, --sqlite or --mariadb",
            ));
        }
    };
    let opts = DbBackupOptions {
        source,
        tags: a.tag,
        host: a.host,
        time,
        dataset: a.dataset,
    };
    // The repository key's derivation (a tenth of a second, by design) runs while the database
    // starts its dump; a repository that fails to open stops the dump unstored.
    let (repo, started) = std::thread::scope(|s| {
        let opening = s.spawn(|| open(g));
        let started = start_database_backup(opts);
        let repo = opening
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (repo, started)
    });
    let repo = repo?;
    let report = started?.store(&repo, progress(g))?;
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
