//! `bulwark restore`: a snapshot, or a path inside one, into a directory (optionally re-read and
//! verified); or a database snapshot into a PostgreSQL database or a new SQLite file, verified
//! against its fingerprint; or any snapshot into a bucket (`--to-bucket`, see `restore_bucket`).

use std::path::PathBuf;

use bulwark_ops::database::{DbTarget, restore_database};
use bulwark_ops::restore::{Overwrite, RestoreOptions, restore};
use bulwark_source::Patterns;

use super::{FilterArgs, emit, human_bytes, open, plural, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (8+ hex digits), `latest`, or ID:PATH
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't', required_unless_present_any = ["postgres_target", "sqlite_target", "mariadb_target", "postgres_datadir", "to_bucket"])]
    pub target: Option<PathBuf>,
    /// Restore only paths matching a glob (repeatable; the syntax of backup --exclude)
    #[arg(long, short = 'i')]
    pub include: Vec<String>,
    /// Leave out paths matching a glob (repeatable)
    #[arg(long, short = 'e')]
    pub exclude: Vec<String>,
    /// Files already in the target: replace them (always), keep those whose size and mtime
    /// match the snapshot (if-changed), or keep whatever is there (never)
    #[arg(long, value_enum, default_value = "always")]
    pub overwrite: OverwriteArg,
    /// Remove what the restored directories hold beyond the snapshot's entries
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Re-read every restored file and compare it with the snapshot
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub db: DbArgs,
    /// Restore into this bucket and prefix instead (s3://BUCKET/PREFIX?region=R&endpoint=URL),
    /// each file as an object with the metadata an s3 dataset recorded; credentials from the
    /// environment, as for repositories
    #[arg(long, value_name = "URL", conflicts_with_all = ["target", "postgres_target", "sqlite_target", "mariadb_target", "postgres_datadir", "delete"])]
    pub to_bucket: Option<String>,
}

/// Database targets.
#[derive(clap::Args, Clone, Default)]
pub struct DbArgs {
    /// Restore a PostgreSQL snapshot into this database (created if missing; it must hold no tables)
    #[arg(long, value_name = "DSN", conflicts_with_all = ["target", "sqlite_target"])]
    pub postgres_target: Option<String>,
    /// Restore a SQLite snapshot to this new file
    #[arg(long, value_name = "PATH", conflicts_with = "target")]
    pub sqlite_target: Option<PathBuf>,
    /// Restore a MariaDB/MySQL snapshot into this database (created if missing; it must hold no tables)
    #[arg(long, value_name = "DSN", conflicts_with_all = ["target", "sqlite_target", "postgres_target"])]
    pub mariadb_target: Option<String>,
    /// With `latest`: the latest snapshot of this dataset
    #[arg(long)]
    pub dataset: Option<String>,
    /// Create the roles the dump needs and the target lacks (from the backup's globals.sql, else NOLOGIN)
    #[arg(long, requires = "postgres_target")]
    pub create_roles: bool,
    /// Restore a physical dataset's base backup into this new data directory, replay its WAL and
    /// promote (to the end of the archive, or --to-time / --to-lsn)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "sqlite_target", "postgres_target", "mariadb_target"], requires = "dataset")]
    pub postgres_datadir: Option<PathBuf>,
    /// With --postgres-datadir: recover to this time (RFC 3339)
    #[arg(
        long,
        value_name = "TIME",
        requires = "postgres_datadir",
        conflicts_with = "to_lsn"
    )]
    pub to_time: Option<String>,
    /// With --postgres-datadir: recover to this WAL location (e.g. 0/3000028)
    #[arg(long, value_name = "LSN", requires = "postgres_datadir")]
    pub to_lsn: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum OverwriteArg {
    Always,
    IfChanged,
    Never,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if a.to_bucket.is_some() {
        return super::restore_bucket::run(g, a);
    }
    let db = &a.db;
    if db.postgres_datadir.is_some() {
        return super::physical::restore(g, a);
    }
    if db.postgres_target.is_some()
        || db.sqlite_target.is_some()
        || db.mariadb_target.is_some()
        || db.dataset.is_some()
    {
        return database(g, a);
    }
    let patterns = |p: &[String]| {
        Patterns::new(p).map_err(|e| Failure::usage(e, "see --help for the pattern syntax"))
    };
    let (include, exclude) = (patterns(&a.include)?, patterns(&a.exclude)?);
    let target = a
        .target
        .clone()
        .ok_or_else(|| Failure::usage("no --target given", "name a directory to restore into"))?;
    let repo = open(g)?;
    let opts = RestoreOptions {
        target: target.clone(),
        include,
        exclude,
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        delete: a.delete,
        filter: a.filter.filter(),
        verify: a.verify,
    };
    let report = restore(&repo, &a.snapshot, &opts, progress(g))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    emit(g, &report, || {
        let mut t = format!(
            "restored {}{}, {}, {} ({}) to {}",
            plural(report.files as usize, "file", "files"),
            match report.hardlinks {
                0 => String::new(),
                n => format!(" ({n} of them hard links)"),
            },
            plural(report.dirs as usize, "directory", "directories"),
            plural(report.links as usize, "symlink", "symlinks"),
            human_bytes(report.bytes),
            target.display()
        );
        if report.skipped > 0 {
            t += &format!(
                "\nkept {} already there (--overwrite)",
                plural(report.skipped as usize, "file", "files")
            );
        }
        if report.deleted > 0 {
            t += &format!(
                "\ndeleted {} not in the snapshot",
                plural(report.deleted as usize, "entry", "entries")
            );
        }
        if a.verify && report.verified {
            t += &format!(
                "\nverified {} files: all match the snapshot",
                report.files_verified
            );
        }
        t
    });
    if !report.errors.is_empty() {
        return Err(Failure::new(
            1,
            format!("{} files were not restored intact", report.errors.len()),
            Some("run `bulwark check --read-data` to find damaged packs"),
        ));
    }
    Ok(0)
}

fn database(g: &Global, a: Args) -> CliResult<i32> {
    let db = &a.db;
    let target = match (&db.postgres_target, &db.sqlite_target, &db.mariadb_target) {
        (Some(dsn), _, _) => DbTarget::Postgres {
            dsn: dsn.clone(),
            create_roles: db.create_roles,
        },
        (None, Some(path), _) => DbTarget::Sqlite { path: path.clone() },
        (None, None, Some(dsn)) => DbTarget::Mariadb { dsn: dsn.clone() },
        (None, None, None) => {
            return Err(Failure::usage(
                "--dataset selects database snapshots: give --postgres-target, --sqlite-target or --mariadb-target",
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
