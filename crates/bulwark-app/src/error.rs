//! What can go wrong at the level of a policy file. Each variant names the part of the
//! workspace that failed (the file, the ledger, a repository by its name in the file, a
//! credential), so a front-end can say which and what to do.

use std::path::PathBuf;

use serde::Serialize;

pub use bulwark_ops::Error as OpsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] bulwark_policy::config::ConfigError),
    #[error("no dataset '{name}' in {}", file.display())]
    NoSuchDataset { name: String, file: PathBuf },
    #[error("ledger: {0}")]
    Ledger(#[from] bulwark_ledger::Error),
    /// An empty ledger where the repositories hold a copy of a longer one: starting afresh
    /// would orphan the evidence.
    #[error(
        "the ledger at {location} is empty, but repository '{repository}' holds a copy of {events} events"
    )]
    LedgerLost {
        location: String,
        repository: String,
        events: u64,
    },
    /// The directory the policy file puts the ledger in does not exist.
    #[error("the ledger's directory {} does not exist", dir.display())]
    LedgerDirectoryMissing { dir: PathBuf },
    /// A repository of the policy file, by its name there.
    #[error("repository '{name}': {source}")]
    Repository { name: String, source: OpsError },
    /// A job failed for a reason that is not its repository's: the source it read, the target
    /// it wrote, or the request.
    #[error(transparent)]
    Job(OpsError),
    #[error("{what}: {detail}")]
    Credential { what: String, detail: String },
    /// A key file that is not one.
    #[error("{}: {detail}", path.display())]
    BadKeyFile { path: PathBuf, detail: String },
    #[error("{0}")]
    Invalid(String),
    /// A request the records refuse (no such incident, one already resolved, a role the policy
    /// file does not declare), with what to do instead.
    #[error("{message}")]
    Request { message: String, hint: &'static str },
}

impl Error {
    pub fn request(message: String, hint: &'static str) -> Error {
        Error::Request { message, hint }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure a step met, for front-ends choosing exit codes and for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No repository where the policy file says.
    NoRepository,
    /// Another process holds the repository's lock.
    Locked,
    /// The credential opens no key slot.
    WrongKey,
    /// Stored data is damaged.
    Damaged,
    /// The storage backend failed (unreachable, refused, full).
    Backend,
    /// What was being backed up failed: nothing was saved.
    Source,
    /// Where a restore was going failed.
    Target,
    /// A password or key file could not be read.
    Credential,
    /// A restore test ran and one of its checks failed.
    Check,
    /// Stopped at a safe point on request (a signal, a shutdown, a lost lease).
    Interrupted,
    Other,
}

impl Error {
    /// A job's error on repository `name`: named after the repository when the repository is
    /// what failed.
    pub fn repository(name: &str, source: impl Into<OpsError>) -> Error {
        match source.into() {
            e @ OpsError::Repo(_) => Error::Repository {
                name: name.to_string(),
                source: e,
            },
            e => Error::Job(e),
        }
    }

    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Repository { source, .. } | Error::Job(source) => match source {
                OpsError::Repo(e) => match e {
                    bulwark_repo::Error::NoRepository { .. } => FailureKind::NoRepository,
                    bulwark_repo::Error::Locked { .. } => FailureKind::Locked,
                    bulwark_repo::Error::WrongKey { .. } => FailureKind::WrongKey,
                    bulwark_repo::Error::Corrupt { .. } => FailureKind::Damaged,
                    bulwark_repo::Error::Backend(_) => FailureKind::Backend,
                    _ => FailureKind::Other,
                },
                OpsError::Source(_) => FailureKind::Source,
                OpsError::Target(_) => FailureKind::Target,
                OpsError::Invalid(_) => FailureKind::Other,
                OpsError::Interrupted => FailureKind::Interrupted,
            },
            Error::Credential { .. } | Error::BadKeyFile { .. } => FailureKind::Credential,
            _ => FailureKind::Other,
        }
    }

    /// The repository layer's error underneath, if any.
    pub fn repo(&self) -> Option<&bulwark_repo::Error> {
        match self {
            Error::Repository { source, .. } | Error::Job(source) => source.repo(),
            _ => None,
        }
    }
}
