use std::fmt;

/// Everything that can go wrong inside the repository layer. Each variant maps to one of the
/// documented exit codes (see `exit_code`), so the CLI never has to guess.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}")]
    NoRepository { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error("no key slot of this repository opens with the given {what}")]
    WrongKey { what: &'static str },
    #[error("repository is locked {by}")]
    Locked { by: String },
    #[error("{object} is damaged: {detail}")]
    Corrupt { object: String, detail: String },
    #[error("{what} not found in the repository")]
    NotFound { what: String },
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    SourceFailed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` with control characters escaped: a name or value quoted in a message may come from a
/// crafted object or the command line, and must not break the message over several lines.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl Error {
    pub fn corrupt(object: impl fmt::Display, detail: impl fmt::Display) -> Self {
        Error::Corrupt {
            object: one_line(&object.to_string()),
            detail: one_line(&detail.to_string()),
        }
    }

    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    /// The process exit code this error stands for (restic's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoRepository { .. } => 10,
            Error::Locked { .. } => 11,
            Error::WrongKey { .. } => 12,
            _ => 1,
        }
    }

    /// A short next step for the user, printed after the error line.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoRepository { .. } => {
                Some("check -r/BULWARK_REPO, or create one with `bulwark init`")
            }
            Error::AlreadyExists { .. } => Some("choose an empty location for `bulwark init`"),
            Error::WrongKey { .. } => Some(
                "check the passphrase (BULWARK_PASSWORD_FILE, --password-file, BULWARK_PASSWORD) or --key-file",
            ),
            Error::Locked { .. } => Some(
                "wait for the other process to finish; a lock older than 30 minutes without refresh is ignored",
            ),
            Error::Corrupt { .. } => Some(
                "run `bulwark check --read-data` to list the damage; `bulwark repair index` rebuilds the index",
            ),
            Error::Backend(_) => Some("check the repository location, permissions and free space"),
            Error::Io { .. } => Some("check the path, permissions and free space"),
            Error::SourceFailed(_) => Some(
                "no snapshot was saved; fix the source (command, database, stream) and run the backup again",
            ),
            _ => None,
        }
    }
}
