//! Owner-only files: everything Bulwark writes that holds secrets or backed-up data can be read
//! by its owner only (mode & 0o077 == 0), whatever the umask: a local repository's directories
//! and objects (key slots above all: with a copy, anyone could attack the passphrase offline)
//! after init, backup, holds, key changes, forget and prune; key files; a restored SQLite
//! database. The cache and the ledger are checked in their own crates (`bulwark-repo`'s
//! `tests/permissions.rs`, `bulwark-ledger`'s).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// Every entry at or below `root` (not following symlinks) that others may read or enter.
fn loose(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode();
        if !m.file_type().is_symlink() && mode & 0o077 != 0 {
            out.push(format!("{:o} {}", mode & 0o7777, p.display()));
        }
        if m.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn count_below(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        n += 1;
        if p.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    n
}

#[test]
fn a_local_repository_is_owner_only_after_every_command_that_writes() {
    let repo = Repo::init(&[]);
    let work = tempdir("bulwark-perm-src-");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let mut rng = Prng::new(7);
    for i in 0..20 {
        fs::write(
            src.join("sub").join(format!("f{i}")),
            rng.bytes(5000 + i * 100),
        )
        .unwrap();
    }
    let first = id_of(&repo.backup(&[&src], &[]));
    fs::write(src.join("changed"), rng.bytes(100_000)).unwrap();
    repo.backup(&[&src], &[]);
    repo.run(&["hold", "add", &first, "--reason", "audit"])
        .assert_ok();
    let key_file = work.path().join("second.key");
    repo.run(&[
        "key",
        "add",
        "--new-key-file",
        &key_file.display().to_string(),
    ])
    .assert_ok();
    repo.run(&["hold", "remove", &first]).assert_ok();
    repo.run(&["forget", "--keep-last", "1"]).assert_ok();
    repo.run(&["prune"]).assert_ok();
    repo.assert_clean();

    let objects = count_below(&repo.path);
    eprintln!("repository: {objects} directories and files checked");
    assert!(objects > 20, "the repository is nearly empty: {objects}");
    assert_eq!(
        loose(&repo.path),
        Vec::<String>::new(),
        "readable by others"
    );
    assert_eq!(
        loose(&key_file),
        Vec::<String>::new(),
        "key file readable by others"
    );
}

/// Initialising inside an existing directory leaves that directory alone, but what Bulwark
/// creates in it is still owner-only.
#[test]
fn init_into_an_existing_directory_makes_its_own_folders_owner_only() {
    let parent = tempdir("bulwark-perm-existing-");
    let root: PathBuf = parent.path().join("shared");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let repo = Repo {
        path: root.clone(),
        dir: parent,
        password: PASSWORD.into(),
    };
    repo.run(&["init"]).assert_ok();
    let work = tempdir("bulwark-perm-src-");
    fs::write(work.path().join("f"), b"data").unwrap();
    repo.backup(&[work.path()], &[]);
    let inside: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .flat_map(|e| loose(&e.unwrap().path()))
        .collect();
    assert_eq!(inside, Vec::<String>::new(), "readable by others");
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o755,
        "init changed the mode of a directory it did not create"
    );
}

#[test]
fn a_restored_sqlite_database_is_owner_only() {
    let dir = tempdir("bulwark-perm-sqlite-");
    let db = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('secret');")
        .unwrap();
    drop(c);
    let repo = Repo::init(&[]);
    let db_s = db.display().to_string();
    repo.run(&["backup", "--sqlite", &db_s, "--dataset", "app"])
        .assert_ok();
    let target = dir.path().join("restored.db");
    repo.run(&[
        "restore",
        "latest",
        "--dataset",
        "app",
        "--sqlite-target",
        &target.display().to_string(),
    ])
    .assert_ok();
    assert_eq!(loose(&target), Vec::<String>::new(), "readable by others");
}
