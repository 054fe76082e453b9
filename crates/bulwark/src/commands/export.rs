//! `bulwark export SNAPSHOT[:PATH] --format tar|zip|sql|csv [--out FILE|DIR/|-]` and
//! `bulwark export --profile NAME [SNAPSHOT]`: a snapshot of a policy file's repository as an
//! archive with a `SHA256SUMS` inside, a database snapshot as its plain SQL or as CSV files
//! (from a scratch restore), or an export profile's queries as CSV files; streamed (to stdout
//! by default) and recorded in the ledger.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bulwark_app::Create;
use bulwark_app::db_export::DbOut;
use bulwark_ops::db_export::DbFormat;
use bulwark_ops::export::Format;

use super::{parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    Tar,
    Zip,
    /// A database snapshot's plain SQL dump
    Sql,
    /// A database snapshot's tables, one CSV file each (from a scratch restore)
    Csv,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The snapshot (`latest` or an id prefix), optionally with a path inside it: ID:/srv/data
    /// (with --profile: default `latest` of the profile's dataset)
    spec: Option<String>,
    /// tar (default), zip, sql or csv (database snapshots)
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Run this export profile of the policy file ([exports.NAME]): one CSV file per query
    #[arg(long)]
    profile: Option<String>,
    /// Where the export goes: a new file, - for stdout, or (CSV) a directory: DIR/ or an
    /// existing empty one
    #[arg(long, default_value = "-")]
    out: String,
    /// The repository to read (default: the policy file's first primary)
    #[arg(long)]
    repository: Option<String>,
    /// sql/csv: the snapshot must be of this dataset (`latest`: its latest)
    #[arg(long)]
    dataset: Option<String>,
    /// Record the export as of this instant (RFC 3339) instead of now
    #[arg(long)]
    at: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let now = parse_at(a.at.as_deref())?;
    if a.profile.is_some() || matches!(a.format, Some(FormatArg::Sql | FormatArg::Csv)) {
        return run_database(g, a, now);
    }
    let Some(spec) = a.spec.clone() else {
        return Err(usage("name the snapshot to export (or `latest`)"));
    };
    if a.dataset.is_some() {
        return Err(usage(
            "--dataset applies to --format sql or csv: name a tar or zip export's snapshot by its id",
        ));
    }
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let repository = match a.repository {
        Some(r) => r,
        None => bulwark_app::export::default_repository(&ws)?,
    };
    let format = match a.format {
        Some(FormatArg::Zip) => Format::Zip,
        _ => Format::Tar,
    };
    let report = if a.out == "-" {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let r = bulwark_app::export::export(&ws, &repository, &spec, format, &mut w, now)?;
        w.flush()
            .map_err(|e| Failure::new(crate::failure::FAILED, format!("stdout: {e}"), None))?;
        r
    } else {
        let path = PathBuf::from(&a.out);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                Failure::new(
                    crate::failure::FAILED,
                    format!("cannot create {}: {e}", path.display()),
                    Some("give a new file name, or --out - for stdout"),
                )
            })?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let r = match bulwark_app::export::export(&ws, &repository, &spec, format, &mut w, now) {
            Ok(r) => r,
            Err(e) => {
                // A failed export leaves no half archive behind.
                drop(w);
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        };
        w.flush().map_err(|e| {
            Failure::new(
                crate::failure::FAILED,
                format!("{}: {e}", path.display()),
                None,
            )
        })?;
        r
    };
    // The archive may be on stdout: the summary goes to stderr.
    if !g.quiet {
        if g.json && a.out != "-" {
            crate::output::print(&serde_json::to_string(&report).expect("reports serialise"));
        } else {
            eprintln!(
                "exported {} files, {} directories, {} symlinks ({} bytes) of snapshot {}{}",
                report.files,
                report.dirs,
                report.symlinks,
                report.bytes,
                &report.snapshot[..8],
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {} special files", report.skipped.len())
                }
            );
        }
    }
    Ok(0)
}

fn usage(message: &str) -> Failure {
    Failure::new(
        crate::failure::USAGE,
        message.to_string(),
        Some("bulwark export SNAPSHOT --format tar|zip|sql|csv, or bulwark export --profile NAME"),
    )
}

/// Whether `--out` names a directory: it ends with `/` or is an existing directory.
fn is_dir_arg(out: &str) -> bool {
    out != "-" && (out.ends_with('/') || Path::new(out).is_dir())
}

/// `--format sql|csv` and `--profile`.
fn run_database(g: &Global, a: Args, now: chrono::DateTime<chrono::Utc>) -> CliResult<i32> {
    let format = match (a.format, &a.profile) {
        (Some(FormatArg::Sql), None) => DbFormat::Sql,
        (Some(FormatArg::Sql | FormatArg::Tar | FormatArg::Zip), Some(_)) => {
            return Err(usage(
                "an export profile writes CSV files: leave out --format or give --format csv",
            ));
        }
        _ => DbFormat::Csv,
    };
    if a.profile.is_some() && (a.repository.is_some() || a.dataset.is_some()) {
        return Err(usage(
            "an export profile reads its own dataset's repository: leave out --repository and --dataset",
        ));
    }
    let spec = match (&a.spec, &a.profile) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => "latest".to_string(),
        (None, None) => return Err(usage("name the snapshot to export (or `latest`)")),
    };
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let run = |out: DbOut| match &a.profile {
        Some(p) => bulwark_app::db_export::export_profile(&ws, p, &spec, out, now),
        None => {
            let repository = match &a.repository {
                Some(r) => r.clone(),
                None => bulwark_app::export::default_repository(&ws)?,
            };
            bulwark_app::db_export::export_database(
                &ws,
                &repository,
                &spec,
                a.dataset.as_deref(),
                format,
                out,
                now,
            )
        }
    };
    let report = if a.out == "-" {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let r = run(DbOut::Stream(&mut w))?;
        w.flush()
            .map_err(|e| Failure::new(crate::failure::FAILED, format!("stdout: {e}"), None))?;
        r
    } else if is_dir_arg(&a.out) {
        // A failed export removes what it wrote there itself.
        run(DbOut::Dir(Path::new(&a.out)))?
    } else {
        let path = PathBuf::from(&a.out);
        // Owner-only: the rows are the customer's data.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Failure::new(
                    crate::failure::FAILED,
                    format!("cannot create {}: {e}", path.display()),
                    Some("give a new file name, DIR/ for a directory, or --out - for stdout"),
                )
            })?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        match run(DbOut::Stream(&mut w)).and_then(|r| {
            w.flush()
                .map_err(|e| bulwark_app::Error::Invalid(format!("{}: {e}", path.display())))?;
            Ok(r)
        }) {
            Ok(r) => r,
            Err(e) => {
                drop(w);
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        }
    };
    if !g.quiet {
        if g.json && a.out != "-" {
            crate::output::print(&serde_json::to_string(&report).expect("reports serialise"));
        } else {
            let rows: u64 = report.files.iter().map(|f| f.rows).sum();
            eprintln!(
                "exported {} snapshot {} as {}: {} files, {} bytes{}",
                report.kind,
                &report.snapshot[..8],
                format!("{:?}", report.format).to_lowercase(),
                report.files.len(),
                report.bytes,
                if report.format == DbFormat::Csv {
                    format!(", {rows} rows")
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(0)
}
