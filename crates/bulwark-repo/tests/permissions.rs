//! Owner-only files in this crate's hands: a local repository made through the library, and
//! the local cache of a repository's index files, snapshots and tree packs (mode & 0o077 == 0
//! for every folder and file, whatever the umask).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use bulwark_repo::writer::BlobWriter;
use bulwark_repo::{
    BlobKind, Credential, Node, NodeKind, Repository, Settings, StoreBackend, Tree,
};

/// Every entry at or below `root` that others may read or enter, and how many were looked at.
fn loose(root: &Path) -> (Vec<String>, usize) {
    let (mut out, mut seen) = (Vec::new(), 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        seen += 1;
        let m = fs::symlink_metadata(&p).unwrap();
        if m.permissions().mode() & 0o077 != 0 {
            out.push(format!(
                "{:o} {}",
                m.permissions().mode() & 0o7777,
                p.display()
            ));
        }
        if m.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    (out, seen)
}

/// A repository holding one snapshot of one tree with one file.
fn repository(root: &Path) -> (Repository, Credential) {
    let (credential, _) = Credential::new_key_file();
    let backend = Arc::new(StoreBackend::local(root, true).unwrap());
    let repo = Repository::init(backend, &credential, Settings::default()).unwrap();
    let index = repo.load_index().unwrap();
    let (tree, _) = BlobWriter::run(&repo, &index, 1, |w| {
        let mut file = Node::new("f".as_ref(), NodeKind::File);
        file.size = 6;
        file.content = vec![w.save(BlobKind::Data, b"secret")?];
        w.save(BlobKind::Tree, &Tree { nodes: vec![file] }.to_bytes())
    })
    .unwrap();
    let snapshot = serde_json::from_value(serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "tree": tree, "paths": ["/"], "hostname": "h",
        "username": "u", "program_version": "test",
    }))
    .unwrap();
    repo.save_snapshot(&snapshot).unwrap();
    (repo, credential)
}

#[test]
fn a_repository_made_through_the_library_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    repository(&root);
    let (loose, seen) = loose(&root);
    assert!(
        seen > 260,
        "only {seen} entries: the data folders are missing"
    );
    assert_eq!(loose, Vec::<String>::new());
}

#[test]
fn the_cache_is_owner_only_even_where_an_older_cache_was_not() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, credential) = repository(&dir.path().join("repo"));
    let base = dir.path().join("cache");
    // A cache folder left by an older version, open to everyone.
    let old = base.join(repo.id().to_hex());
    fs::create_dir_all(&old).unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();

    let mut cached = Repository::open(
        Arc::new(StoreBackend::local(&dir.path().join("repo"), false).unwrap()),
        &credential,
    )
    .unwrap();
    cached.use_cache(Some(&base));
    let index = cached.load_index().unwrap();
    let (snapshots, bad) = cached.load_snapshots().unwrap();
    assert!(bad.is_empty());
    let tree = cached.load_tree(&index, &snapshots[0].1.tree).unwrap();
    assert_eq!(tree.nodes.len(), 1);

    let (loose_cache, seen) = loose(&old);
    assert!(seen >= 7, "nothing was cached: {seen} entries");
    assert_eq!(loose_cache, Vec::<String>::new());
}
