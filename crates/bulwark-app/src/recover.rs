//! Recovery from nothing (policy §5, catastrophic loss): on a fresh host with only the off-site
//! repository and a credential for it, bring back the plan, its evidence and every dataset.
//!
//! Protocol, each step refusing before it writes anything it cannot finish:
//! 1. Open the one repository left, with the credential given (a key file, perhaps rebuilt from
//!    recovery shares, or a passphrase). Nothing else is contacted.
//! 2. Read its newest ledger copy (see [`crate::ledger_copy`]): the ledger export must verify on
//!    its own and the copy must hold the policy file that was in force.
//! 3. Write the policy file into the target directory (never over an existing file) and open a
//!    workspace on it; its ledger (where the policy file puts it) must be empty or a prefix of the
//!    copy, and receives the copy's events, whose head must then equal the copy's head.
//! 4. Drill from that repository alone ([`crate::drill`] with [`Source::Repository`]): every
//!    dataset (or those asked for) is restored into the drill's targets and checked, and the
//!    drill is recorded in the recovered ledger, after a `recovery` event naming the copy used.
//!
//! The policy file names which of its repositories the one left is: the caller says so, or its
//! location matches a repository's `url` as written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bulwark_ledger::{Anchor, EventKind, verify_jsonl};
use bulwark_ops::Progress;
use bulwark_repo::{Credential, Repository};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::drill::{self, DrillReport, DrillRequest, Scope, Source};
use crate::error::{Error, Result};
use crate::events::Details;
use crate::ledger_copy::{self, POLICY_FILE};
use crate::workspace::{Create, OpenOptions, PolicyFile, Workspace};

pub struct RecoverRequest<'a> {
    /// The off-site repository's location (a directory or URL).
    pub from: String,
    pub credential: Credential,
    /// The directory that receives the policy file (and the ledger, unless the policy file puts
    /// it elsewhere).
    pub to: PathBuf,
    /// Which repository of the policy file `from` is; by default the one whose `url` is `from`.
    pub repository: Option<String>,
    pub scope: Scope,
    pub now: DateTime<Utc>,
    pub progress: &'a dyn Progress,
}

/// The `recovery` event: which repository and ledger copy the plan came back from.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct RecoveryDetails {
    pub repository: String,
    pub copy_snapshot: String,
    pub copy_head_seq: u64,
}

impl Details for RecoveryDetails {
    const KIND: EventKind = EventKind::Recovery;
}

/// What recovery brought back.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RecoverReport {
    pub policy_file: PathBuf,
    /// The repository of the policy file recovered from.
    pub repository: String,
    pub ledger: String,
    /// The ledger copy used, and the head it and the recovered ledger hold.
    pub copy_snapshot: String,
    pub copy_time: DateTime<Utc>,
    pub events_restored: u64,
    pub head: Anchor,
    pub drill: DrillReport,
}

impl RecoverReport {
    pub fn passed(&self) -> bool {
        self.drill.passed
    }
}

/// Recover into `req.to`; see the module docs for the protocol.
pub fn recover(req: RecoverRequest) -> Result<RecoverReport> {
    let fail = |e: bulwark_repo::Error| Error::repository(&req.from, e);
    let backend = bulwark_repo::backend::open_location(&req.from, false).map_err(fail)?;
    bulwark_repo::repository::describe_header(backend.as_ref()).map_err(fail)?;
    let repo = Repository::open(backend, &req.credential).map_err(fail)?;
    let copy = ledger_copy::newest(&repo)
        .map_err(|e| Error::repository(&req.from, e))?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} holds no copy of the ledger: no run ever stored one there",
                req.from
            ))
        })?;
    let verified = verify_jsonl(&copy.jsonl);
    if let Some(problem) = verified.problems.first() {
        return Err(Error::Invalid(format!(
            "the ledger copy {} does not verify: {problem}",
            copy.snapshot_id.short()
        )));
    }
    let policy_bytes = copy.policy.ok_or_else(|| {
        Error::Invalid(format!(
            "the ledger copy {} holds no policy file (it was made before runs stored one)",
            copy.snapshot_id.short()
        ))
    })?;

    // Everything is judged before the policy file is written: a refusal leaves `to` as it was.
    let policy_file = req.to.join(POLICY_FILE);
    let config = bulwark_policy::config::Config::parse(
        &policy_file.display().to_string(),
        &String::from_utf8_lossy(&policy_bytes),
    )?;
    let repository = match &req.repository {
        Some(name) if config.repositories.contains_key(name) => name.clone(),
        Some(name) => {
            return Err(Error::Invalid(format!(
                "the recovered policy file has no repository '{name}'"
            )));
        }
        None => named_by_location(&config, &req.to, &req.from)?,
    };
    write_policy(&policy_file, &policy_bytes)?;
    let policy = PolicyFile::read(&policy_file)?;
    let ws = Workspace::with_policy(
        policy,
        OpenOptions {
            credentials: Default::default(),
            create: Create::Everything,
            cache: true,
        },
    )?;
    let region = ws.config().repositories[&repository].region.clone();
    let repo = ws.adopt_repository(&repository, repo);

    let events_restored = ws.ledger().import_jsonl(&copy.jsonl)?;
    let head = ws.ledger().head()?;
    if head != verified.head {
        return Err(Error::Invalid(format!(
            "the recovered ledger's head (seq {}) is not the copy's (seq {}): the ledger at {} \
             already held other events",
            head.seq,
            verified.head.seq,
            ws.ledger_location().display()
        )));
    }
    let copy_time = copy.time.to_utc();
    ws.ledger().append(
        RecoveryDetails {
            repository: repository.clone(),
            copy_snapshot: copy.snapshot_id.to_hex(),
            copy_head_seq: head.seq,
        }
        .event(format!(
            "recovered the policy file and {} ledger events from '{repository}' (copy {})",
            head.seq,
            copy.snapshot_id.short()
        ))
        .config_hash(ws.config_hash())
        .timed(req.now, req.now),
    )?;

    let drill = drill::drill(
        &ws,
        &DrillRequest {
            scope: req.scope.clone(),
            source: Source::Repository {
                name: repository.clone(),
                repo: Arc::clone(&repo),
                region,
            },
            now: req.now,
            progress: req.progress,
        },
    )?;
    Ok(RecoverReport {
        policy_file,
        repository,
        ledger: ws.ledger_location().display(),
        copy_snapshot: copy.snapshot_id.to_hex(),
        copy_time,
        events_restored,
        head,
        drill,
    })
}

/// Write the policy file at `path`, creating its directory; never over an existing file.
fn write_policy(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = crate::workspace::base_of(path);
    let cannot = |what: &str, e: std::io::Error| {
        Error::Invalid(format!("cannot {what} {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| cannot("create", e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Invalid(format!(
                    "{} exists: recovery never overwrites a policy file",
                    path.display()
                ))
            } else {
                cannot("write into", e)
            }
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| cannot("write into", e))
}

/// The repository whose `url` (as written, or resolved against `base`, the policy file's
/// directory) is `location`.
fn named_by_location(
    config: &bulwark_policy::config::Config,
    base: &Path,
    location: &str,
) -> Result<String> {
    let same = |url: &str| {
        url == location
            || (!url.contains("://")
                && same_directory(&crate::credentials::resolve(base, url), location))
    };
    let found: Vec<&String> = config
        .repositories
        .iter()
        .filter(|(_, r)| same(&r.url))
        .map(|(name, _)| name)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(Error::Invalid(format!(
            "no single repository of the recovered policy file is at {location}: name it \
             (one of {})",
            config
                .repositories
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn same_directory(a: &Path, b: &str) -> bool {
    match (a.canonicalize(), Path::new(b).canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
