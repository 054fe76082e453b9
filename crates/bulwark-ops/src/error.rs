//! What can go wrong in a job. The variant says whose fault it was, so a front-end can say what
//! to do about it: the repository (missing, locked, wrong key, damaged, unreachable), the source
//! being backed up (nothing was saved), the target being restored into (the snapshot is
//! unharmed), or the request itself.

use std::fmt;

pub use bulwark_repo::Error as RepoError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// What was being backed up failed (a command, a database, a stream): no snapshot was saved.
    #[error("{0}")]
    Source(String),
    /// Where a restore was going failed (a database server, a file or directory).
    #[error("{0}")]
    Target(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// Stopped at a safe point because the front-end asked.
    #[error("interrupted: stopped at a safe point; nothing partial is visible")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn source(e: impl fmt::Display) -> Error {
        Error::Source(e.to_string())
    }

    pub fn target(e: impl fmt::Display) -> Error {
        Error::Target(e.to_string())
    }

    /// The repository layer's error, if that is what this is.
    pub fn repo(&self) -> Option<&RepoError> {
        match self {
            Error::Repo(e) => Some(e),
            _ => None,
        }
    }

    pub fn corrupt(object: impl fmt::Display, detail: impl fmt::Display) -> Error {
        Error::Repo(RepoError::corrupt(object, detail))
    }

    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Error {
        Error::Repo(RepoError::io(context, source))
    }
}
