//! How a failed command reports itself: one line with the cause, a hint that names what to do,
//! and one of the documented exit codes (restic's: 1 failed, 2 usage, 3 partly unreadable,
//! 10 no repository, 11 locked, 12 wrong key; 130/143 stopped by SIGINT/SIGTERM, see `signals`).
//! The libraries say what went wrong; this module
//! alone decides how that reads and how the process ends.

use bulwark_app::FailureKind;

pub struct Failure {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
}

pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
pub const PARTIAL: i32 = 3;
pub const NO_REPOSITORY: i32 = 10;
pub const LOCKED: i32 = 11;
pub const WRONG_KEY: i32 = 12;

const KEY_HINT: &str =
    "check the passphrase (BULWARK_PASSWORD_FILE, --password-file, BULWARK_PASSWORD) or --key-file";
const CREDENTIAL_HINT: &str =
    "set BULWARK_PASSWORD_FILE or --password-file, BULWARK_PASSWORD, or --key-file";

impl Failure {
    pub fn new(code: i32, message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    pub fn usage(message: impl Into<String>, hint: &str) -> Failure {
        Failure::new(USAGE, message, Some(hint))
    }

    pub fn print(&self, json: bool) {
        let line = match &self.hint {
            Some(h) => format!("error: {} (hint: {h})", self.message),
            None => format!("error: {}", self.message),
        };
        eprintln!("{line}");
        if json {
            let doc = serde_json::json!({ "error": self.message, "hint": self.hint, "exit_code": self.code });
            crate::output::print(&doc.to_string());
        }
    }
}

/// The exit code of a failure kind.
pub fn code_of(kind: FailureKind) -> i32 {
    match kind {
        FailureKind::NoRepository => NO_REPOSITORY,
        FailureKind::Locked => LOCKED,
        FailureKind::WrongKey => WRONG_KEY,
        FailureKind::Interrupted => crate::signals::exit_code(),
        _ => FAILED,
    }
}

/// The exit code and hint of a repository-layer error.
fn repo_code_and_hint(e: &bulwark_repo::Error) -> (i32, Option<&'static str>) {
    use bulwark_repo::Error::*;
    match e {
        NoRepository { .. } => (
            NO_REPOSITORY,
            Some(
                "check -r/BULWARK_REPO or the policy file's url, or create one with `bulwark init`",
            ),
        ),
        NotBulwark { .. } => (
            NO_REPOSITORY,
            Some(
                "check -r/BULWARK_REPO: that location belongs to another tool; Bulwark cannot read it",
            ),
        ),
        AlreadyExists { .. } => (FAILED, Some("choose an empty location for `bulwark init`")),
        WrongKey { .. } => (WRONG_KEY, Some(KEY_HINT)),
        Locked { .. } => (
            LOCKED,
            Some(
                "wait for the other process to finish; a lock older than 30 minutes without refresh is ignored",
            ),
        ),
        Corrupt { .. } => (
            FAILED,
            Some(
                "run `bulwark check --read-data` to list the damage; `bulwark repair index` rebuilds the index",
            ),
        ),
        NotFound { .. } => (
            FAILED,
            Some("see `bulwark snapshots` for what the repository holds"),
        ),
        Backend(_) => (
            FAILED,
            Some("check the repository location, permissions and free space"),
        ),
        Io { .. } => (FAILED, Some("check the path, permissions and free space")),
        Invalid(_) => (FAILED, None),
    }
}

impl From<bulwark_repo::Error> for Failure {
    fn from(e: bulwark_repo::Error) -> Failure {
        let (code, hint) = repo_code_and_hint(&e);
        Failure::new(code, e.to_string(), hint)
    }
}

impl From<bulwark_ops::Error> for Failure {
    fn from(e: bulwark_ops::Error) -> Failure {
        use bulwark_ops::Error::*;
        match e {
            Repo(e) => e.into(),
            Source(m) => Failure::new(
                FAILED,
                m,
                Some(
                    "no snapshot was saved; fix the source (command, database, stream) and run the backup again",
                ),
            ),
            Target(m) => Failure::new(
                FAILED,
                m,
                Some(
                    "the restore target failed; the snapshot is unharmed: fix the target (server, path, space) and restore again",
                ),
            ),
            Invalid(m) => Failure::new(FAILED, m, None),
            Interrupted => Failure::new(
                crate::signals::exit_code(),
                format!(
                    "stopped by {} at a safe point; the repository lock is released",
                    crate::signals::received_name()
                ),
                Some(
                    "run the command again: a backup or copy reuses what it already stored, and no snapshot is half-written",
                ),
            ),
        }
    }
}

impl From<bulwark_app::Error> for Failure {
    fn from(e: bulwark_app::Error) -> Failure {
        use bulwark_app::Error::*;
        let message = e.to_string();
        match e {
            ConfigUnreadable { .. } => Failure::new(
                FAILED,
                message,
                Some("pass --config PATH or set BULWARK_CONFIG; see examples/bulwark.toml"),
            ),
            Config(_) => Failure::new(
                FAILED,
                message,
                Some("fix the file at that line and column"),
            ),
            NoSuchDataset { .. } => Failure::new(
                USAGE,
                message,
                Some("see `bulwark status` for the datasets"),
            ),
            Ledger(bulwark_ledger::Error::Missing(_)) => Failure::new(
                FAILED,
                message,
                Some(
                    "the first `bulwark run` creates the ledger; if it was lost, `bulwark ledger restore` brings back its copy from the repositories",
                ),
            ),
            Ledger(bulwark_ledger::Error::Damaged(_)) => Failure::new(
                FAILED,
                message,
                Some("run `bulwark ledger verify` to see what was altered"),
            ),
            Ledger(_) => Failure::new(FAILED, message, Some("check `ledger` in the policy file")),
            LedgerLost { .. } => Failure::new(
                FAILED,
                message,
                Some("restore it with `bulwark ledger restore -c FILE` before running"),
            ),
            LedgerDirectoryMissing { .. } => Failure::new(
                FAILED,
                message,
                Some(
                    "is the disk mounted? create it, or use `bulwark init -c FILE` or `run --init`",
                ),
            ),
            Job(source) => source.into(),
            Repository { source, .. } => {
                let inner = Failure::from(source);
                Failure { message, ..inner }
            }
            Credential { .. } => Failure::new(FAILED, message, Some(CREDENTIAL_HINT)),
            BadKeyFile { .. } => Failure::new(WRONG_KEY, message, Some(CREDENTIAL_HINT)),
            Invalid(_) => Failure::new(FAILED, message, None),
            Request { hint, .. } => Failure::new(USAGE, message, Some(hint)),
        }
    }
}
