//! A long-lived handle (a daemon's) whose storage was unmounted, deleted or replaced takes no
//! lock, so no job writes packs where no config or key slot will ever open them.

use std::sync::Arc;

use bulwark_repo::backend::StoreBackend;
use bulwark_repo::keys::Credential;
use bulwark_repo::lock::LockKind;
use bulwark_repo::repository::Settings;
use bulwark_repo::{Error, Repository};

fn init(root: &std::path::Path) -> Repository {
    let (credential, _) = Credential::new_key_file();
    let backend = Arc::new(StoreBackend::local(root, true).unwrap());
    Repository::init(backend, &credential, Settings::default()).unwrap()
}

#[test]
fn a_handle_whose_repository_vanished_takes_no_lock_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = init(&root);
    drop(repo.lock(LockKind::Shared).unwrap());
    std::fs::rename(&root, dir.path().join("unmounted")).unwrap();
    match repo.lock(LockKind::Shared) {
        Err(Error::NoRepository { location }) => assert!(location.contains("repo"), "{location}"),
        other => panic!("expected no repository, got {:?}", other.map(|_| ())),
    }
    assert!(
        !root.exists(),
        "nothing was written where the repository was"
    );
}

#[test]
fn a_handle_whose_repository_was_replaced_takes_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = init(&root);
    std::fs::rename(&root, dir.path().join("old")).unwrap();
    let _other = init(&root);
    match repo.lock(LockKind::Shared) {
        Err(Error::NotBulwark { what, .. }) => assert!(what.contains("replaced"), "{what}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
