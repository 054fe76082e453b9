use std::fmt;

/// Everything that can go wrong inside the repository layer. The variants are distinct enough
/// for a front-end to map each to its own exit code and hint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}")]
    NoRepository { location: String },
    /// Something else lives there: another tool's repository, or any other file called `config`.
    #[error("{location} is not a Bulwark repository: {what}")]
    NotBulwark { location: String, what: String },
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
}
