//! Post-mortems (§7): submitted for a resolved incident as a link (`--url`) or a document
//! (`--file`), recorded as the incident's `postmortem` step.
//!
//! A document is evidence like the ledger: it is stored content-addressed in the evidence
//! directory beside the ledger ([`evidence_dir`]) as `postmortems/<BLAKE3>.<ext>`, and its BLAKE3
//! and size go into the hashed event, so the chain vouches for the document and anyone can check
//! the stored copy with `b3sum`. Storing is write-to-temporary then rename (a crash leaves no
//! half file under the final name), and storing the same bytes twice is one file. The stored
//! copy is readable by its owner only: a post-mortem may name people and systems.
//!
//! One post-mortem per incident; it must come after the resolution, and only incidents whose
//! SEV needs one (`incidents.postmortem_for`) ask for one, though any resolved incident may have
//! one.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::events::Details;
use crate::incident::{Action, Incident, IncidentDetails, PostmortemRef, find, incidents};
use crate::workspace::{LedgerLocation, Workspace};

/// Where a post-mortem is.
#[derive(Debug, Clone)]
pub enum Source {
    Url(String),
    File(PathBuf),
}

/// The directory evidence files are kept in: beside a SQLite ledger, or beside the policy file
/// for a PostgreSQL ledger.
pub fn evidence_dir(ws: &Workspace) -> PathBuf {
    match ws.ledger_location() {
        LedgerLocation::Sqlite(p) => p
            .parent()
            .map_or_else(|| ws.base().to_path_buf(), Path::to_path_buf)
            .join("evidence"),
        LedgerLocation::Postgres(_) => ws.base().join("evidence"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    pub incident: Incident,
    pub reference: PostmortemRef,
    /// When it came in after its deadline, by how many seconds.
    pub late_by_s: Option<i64>,
    pub deadline: Option<DateTime<Utc>>,
}

pub fn submit(ws: &Workspace, id: &str, source: &Source, at: DateTime<Utc>) -> Result<Submitted> {
    let i = find(ws, id)?;
    let Some(resolved) = i.resolved else {
        return Err(Error::request(
            format!(
                "{} is not resolved: the post-mortem follows the resolution",
                i.id
            ),
            "resolve it first with `bulwark incident resolve`",
        ));
    };
    if let Some(p) = &i.postmortem {
        return Err(Error::request(
            format!(
                "{} already has a post-mortem (submitted {})",
                i.id,
                p.at.format("%Y-%m-%d %H:%M UTC")
            ),
            "see `bulwark postmortem list`",
        ));
    }
    if at < resolved {
        return Err(Error::request(
            format!(
                "{} was resolved at {}: its post-mortem cannot come before",
                i.id,
                resolved.format("%Y-%m-%d %H:%M UTC")
            ),
            "check --at",
        ));
    }
    let reference = match source {
        Source::Url(u) => {
            let parsed = url::Url::parse(u).map_err(|e| {
                Error::request(
                    format!("'{u}' is not a URL: {e}"),
                    "give the post-mortem's full address, e.g. https://wiki.example.com/pm/42",
                )
            })?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(Error::request(
                    format!("'{u}' is not an http(s) address"),
                    "give a link people can open, or --file FILE",
                ));
            }
            PostmortemRef {
                url: Some(u.clone()),
                ..Default::default()
            }
        }
        Source::File(path) => store(ws, path)?,
    };
    let d = IncidentDetails {
        id: i.id.clone(),
        action: Action::Postmortem,
        postmortem: Some(reference.clone()),
        ..Default::default()
    };
    ws.ledger().append(
        d.event(format!("{}: post-mortem submitted", i.id))
            .config_hash(ws.config_hash())
            .timed(at, at),
    )?;
    let incident = find(ws, &i.id)?;
    let deadline = incident.fact().postmortem_due(ws.config());
    Ok(Submitted {
        late_by_s: deadline.filter(|d| at > *d).map(|d| (at - d).num_seconds()),
        deadline,
        incident,
        reference,
    })
}

fn store(ws: &Workspace, path: &Path) -> Result<PostmortemRef> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::request(
            format!("cannot read {}: {e}", path.display()),
            "give the post-mortem document's path",
        )
    })?;
    if bytes.is_empty() {
        return Err(Error::request(
            format!("{} is empty", path.display()),
            "submit the written post-mortem",
        ));
    }
    let hash = bulwark_ledger::hash_hex(&bytes);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default();
    let dir = evidence_dir(ws).join("postmortems");
    let io = |e: std::io::Error| {
        Error::Invalid(format!("storing the post-mortem in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let target = dir.join(format!("{hash}{ext}"));
    if !target.exists() {
        let tmp = dir.join(format!(".{hash}.tmp"));
        let mut f = private_file(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &target).map_err(io)?;
    }
    Ok(PostmortemRef {
        stored: Some(target.display().to_string()),
        file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        blake3: Some(hash),
        bytes: bytes.len() as u64,
        ..Default::default()
    })
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Each resolved incident that needs or has a post-mortem, with its deadline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub incident: String,
    pub title: String,
    pub sev: u8,
    pub owner: String,
    pub resolved: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    pub submitted: Option<DateTime<Utc>>,
    pub reference: Option<PostmortemRef>,
    /// `submitted`, `late`, `pending` or `overdue`.
    pub state: &'static str,
}

pub fn list(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for i in incidents(ws)? {
        let Some(resolved) = i.resolved else {
            continue;
        };
        let deadline = i.fact().postmortem_due(ws.config());
        if deadline.is_none() && i.postmortem.is_none() {
            continue;
        }
        let submitted = i.postmortem.as_ref().map(|p| p.at);
        let state = match (submitted, deadline) {
            (Some(s), Some(d)) if s > d => "late",
            (Some(_), _) => "submitted",
            (None, Some(d)) if now >= d => "overdue",
            (None, _) => "pending",
        };
        out.push(Entry {
            incident: i.id.clone(),
            title: i.title.clone(),
            sev: i.sev,
            owner: i.owner.clone(),
            resolved,
            deadline,
            submitted,
            reference: i.postmortem.as_ref().map(|p| p.reference.clone()),
            state,
        });
    }
    Ok(out)
}
