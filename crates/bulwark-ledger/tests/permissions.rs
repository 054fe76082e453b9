//! The SQLite ledger holds the evidence of every backup: a new ledger file, and the `-wal` and
//! `-shm` files SQLite keeps beside it, are owner-only (mode & 0o077 == 0) whatever the umask.

use std::os::unix::fs::PermissionsExt;

use bulwark_ledger::{EventKind, Ledger, NewEvent, SqliteLedger};

#[test]
fn a_new_ledger_and_its_wal_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::open(&path, &bulwark_ledger::Options::new("test")).unwrap();
    ledger
        .append(NewEvent::new(EventKind::Backup, "nightly").dataset("db"))
        .unwrap();
    // Read while the connection is open: the -wal and -shm files exist now.
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        seen.push(entry.file_name().to_string_lossy().into_owned());
        assert_eq!(
            mode & 0o077,
            0,
            "{:?} is mode {:o}",
            entry.path(),
            mode & 0o7777
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        ["ledger.sqlite", "ledger.sqlite-shm", "ledger.sqlite-wal"]
    );
    drop(ledger);
    // Opening again keeps working (the file was created empty, then made a database).
    assert!(
        SqliteLedger::open(&path, &bulwark_ledger::Options::new("test"))
            .unwrap()
            .verify()
            .unwrap()
            .is_ok()
    );
}
