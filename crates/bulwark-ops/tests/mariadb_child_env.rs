//! No Bulwark variable reaches a MariaDB program Bulwark starts: a backup (`mariadb-dump`, the
//! `--version` probes) and a restore test (`mariadb-install-db`, the scratch `mariadbd`, the
//! `mariadb` client that loads the dump) against a real server, each program run through a
//! wrapper that records its environment and then runs the real one.
//!
//! A test binary of its own: it sets `BULWARK_MARIADB_BINDIR` (the wrappers' directory, and so
//! itself a variable that must not leak) in its own environment, which is sound only while no
//! other test runs beside it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bulwark_ops::Silent;
use bulwark_ops::database::backup_database;
use bulwark_ops::restore_test::{RestoreTestOptions, restore_test};
use bulwark_source::db::mariadb::{CLIENT, DUMP, INSTALL_DB, MariadbTools, SERVER};
use common::*;

/// A script named `name` in `dir` that writes its environment to `records/NAME.PID`, then runs
/// `real` with its arguments.
fn wrapper(dir: &Path, records: &Path, name: &str, real: &Path) {
    let script = dir.join(name);
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > '{}/{name}.'$$\nexec '{}' \"$@\"\n",
            records.display(),
            real.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn no_bulwark_variable_reaches_a_mariadb_program() {
    if !mariadb_available() {
        return;
    }
    // The source server is the test's own: started before the wrappers are in place.
    let server = MariaServer::start();
    server.sql(
        "",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note TEXT); \
         INSERT INTO shop.orders VALUES (1, 'one'), (2, 'two')",
    );

    let dir = tempfile::Builder::new()
        .prefix("bulwark-mariadb-env-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let records = dir.path().join("records");
    fs::create_dir(&records).unwrap();
    // The scratch server's programs run as an unprivileged account when the tests run as root.
    fs::set_permissions(&records, fs::Permissions::from_mode(0o1777)).unwrap();
    let real = MariadbTools::locate();
    for names in [DUMP, CLIENT, SERVER, INSTALL_DB] {
        wrapper(
            dir.path(),
            &records,
            names[0],
            &real.program(names).unwrap(),
        );
    }
    // SAFETY: this binary's only test, and no thread of its own has started yet.
    unsafe { std::env::set_var("BULWARK_MARIADB_BINDIR", dir.path()) };

    let r = repo();
    backup_database(&r.repo, backup_opts(&server.dsn("shop")), &Silent).expect("backup");
    let report = restore_test(&r.repo, &RestoreTestOptions::new("latest"), &Silent).unwrap();
    assert!(report.passed, "restore test failed: {report:#?}");

    let mut ran = Vec::new();
    for entry in fs::read_dir(&records).unwrap() {
        let path = entry.unwrap().path();
        let env = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let leaked: Vec<&str> = env
            .lines()
            .filter(|l| l.starts_with("BULWARK_"))
            .map(|l| l.split('=').next().unwrap_or(l))
            .collect();
        assert!(leaked.is_empty(), "{name} inherited {leaked:?}");
        ran.push(name.split('.').next().unwrap().to_string());
    }
    for program in ["mariadb-dump", "mariadb-install-db", "mariadbd", "mariadb"] {
        assert!(
            ran.iter().any(|r| r == program),
            "{program} ran through its wrapper (ran: {ran:?})"
        );
    }
}
