//! `bulwark export SNAPSHOT[:PATH] --format tar|zip [--out FILE|-]`: a snapshot of a policy
//! file's repository as an archive with a `SHA256SUMS` inside, streamed (to stdout by default),
//! and recorded in the ledger.

use std::io::Write;
use std::path::PathBuf;

use bulwark_app::Create;
use bulwark_ops::export::Format;

use super::{parse_at, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};
use crate::failure::Failure;

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum FormatArg {
    Tar,
    Zip,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// The snapshot (`latest` or an id prefix), optionally with a path inside it: ID:/srv/data
    spec: String,
    #[arg(long, value_enum, default_value = "tar")]
    format: FormatArg,
    /// Where the archive goes: a new file, or - for stdout
    #[arg(long, default_value = "-")]
    out: String,
    /// The repository to read (default: the policy file's first primary)
    #[arg(long)]
    repository: Option<String>,
    /// Record the export as of this instant (RFC 3339) instead of now
    #[arg(long)]
    at: Option<String>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let now = parse_at(a.at.as_deref())?;
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let repository = match a.repository {
        Some(r) => r,
        None => bulwark_app::export::default_repository(&ws)?,
    };
    let format = match a.format {
        FormatArg::Tar => Format::Tar,
        FormatArg::Zip => Format::Zip,
    };
    let report = if a.out == "-" {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let r = bulwark_app::export::export(&ws, &repository, &a.spec, format, &mut w, now)?;
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
        let r = match bulwark_app::export::export(&ws, &repository, &a.spec, format, &mut w, now) {
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
