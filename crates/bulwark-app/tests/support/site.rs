//! The embedded default in a temporary directory for the app tests: its sample data, its
//! passphrase and its policy file, as it is or edited (the evidence tests run it twice a week,
//! so a year of history is a hundred runs, not a thousand).

#![allow(dead_code)] // Each test binary uses a part of this module.

use std::path::{Path, PathBuf};
use std::process::Command;

use bulwark_app::{Create, Credentials, OpenOptions, Workspace};

/// The embedded default, copied with its sample data and passphrase into a fresh directory, its
/// state under `state/`; `edit` may change the policy file's text.
pub fn embedded_default_with(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let status = Command::new("cp")
        .arg("-a")
        .arg(examples.join("sample"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        examples.join("demo.passphrase"),
        dir.path().join("demo.passphrase"),
    )
    .unwrap();
    let text = std::fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, edit(text)).unwrap();
    (dir, config)
}

/// The embedded default as it is.
pub fn embedded_default() -> (tempfile::TempDir, PathBuf) {
    embedded_default_with(|t| t)
}

/// The embedded default on a twice-weekly schedule (every 84 hours) with an RPO of 8 days, so
/// the runs keep every promise unless some are skipped.
pub fn site() -> (tempfile::TempDir, PathBuf) {
    embedded_default_with(|t| {
        t.replace("rpo = \"24h\"", "rpo = \"8d\"")
            .replace("\"daily at 02:00\"", "\"0 1 * * 1,4\"")
            .replace("\"every 6h\"", "\"0 1 * * 1,4\"")
    })
}

pub fn open(config: &Path) -> Workspace {
    Workspace::open(
        config,
        OpenOptions {
            credentials: Credentials::default(),
            create: Create::Everything,
            cache: false,
        },
    )
    .unwrap()
}
