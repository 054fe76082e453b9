//! A customer's own export of a snapshot (`bulwark export`), taken from a repository of the
//! policy file, never from production, and recorded: every export, done or failed, is a ledger
//! event of kind `export` naming the snapshot, the path, the format and what was written.

use std::io::Write;

use bulwark_ledger::{EventKind, NewEvent};
use bulwark_ops::export::{ExportReport, Format};
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// The ledger kind of an export event.
pub const KIND: &str = "export";

/// The repository an export reads by default: the first of the policy file that is no replica.
pub fn default_repository(ws: &Workspace) -> Result<String> {
    ws.policy()
        .config
        .repositories
        .values()
        .find(|r| r.replica_of.is_none())
        .map(|r| r.name.clone())
        .ok_or_else(|| Error::Invalid("the policy file names no primary repository".into()))
}

/// Streams `spec` of `repository` to `out` and records the export.
pub fn export(
    ws: &Workspace,
    repository: &str,
    spec: &str,
    format: Format,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> Result<ExportReport> {
    let repo = ws.repository(repository)?;
    let started = now;
    let result = bulwark_ops::export::export(&repo, spec, format, out)
        .map_err(|e| Error::repository(repository, e));
    let finished = started + (Utc::now() - now).max(chrono::Duration::zero());
    let (ok, summary, details) = match &result {
        Ok(r) => (
            true,
            format!(
                "exported {} files ({} bytes) of snapshot {} as {:?}",
                r.files,
                r.bytes,
                &r.snapshot[..8.min(r.snapshot.len())],
                format
            )
            .to_lowercase(),
            serde_json::to_value(r).expect("reports serialise"),
        ),
        Err(e) => (
            false,
            format!("export of {spec} failed: {e}"),
            serde_json::json!({ "spec": spec, "format": format, "error": e.to_string() }),
        ),
    };
    ws.ledger().append(
        NewEvent::new(EventKind::parse(KIND), summary)
            .repository(repository)
            .config_hash(ws.config_hash())
            .timed(started, finished)
            .ok(ok)
            .details(details),
    )?;
    result
}
