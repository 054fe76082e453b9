use crate::verify::VerifyReport;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ledger database (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    #[error("ledger: {0}")]
    Io(#[from] std::io::Error),
    /// The ledger database is not there (and was not to be created).
    #[error("there is no ledger at {0}")]
    Missing(String),
    /// Stored data that cannot be read as an event, or a JSONL copy that cannot be parsed.
    #[error("ledger data is malformed: {0}")]
    Malformed(String),
    /// A request the ledger refuses (bad argument, wrong event kind for the call...).
    #[error("{0}")]
    Invalid(String),
    /// The head record and the stored events disagree: the ledger was altered outside Bulwark.
    /// Appending is refused until it is investigated (`verify` says what is wrong).
    #[error("the ledger is damaged: {0} (run the ledger verification for details)")]
    Damaged(String),
    #[error("no remediation item {0}")]
    RemediationNotFound(String),
    #[error("remediation item {0} is already closed")]
    RemediationClosed(String),
    #[error("no event {0} in the ledger")]
    EventNotFound(String),
    #[error("the ledger's schema version is {found}, this Bulwark reads version {expected}")]
    Schema { found: String, expected: String },
    /// An import whose copy does not verify.
    #[error("the copy does not verify: {0}")]
    CopyInvalid(Box<VerifyReport>),
    /// An import whose copy and this ledger are not one the continuation of the other.
    #[error("the copy and the ledger have diverged: {0}")]
    Diverged(String),
}
