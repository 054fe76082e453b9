//! Backups and copies with a credential that cannot delete, on real local repositories.
//!
//! moto enforces IAM but checks the signature of every listing with a '/' in its prefix wrongly
//! (boto3's fail the same way), so a repository cannot run under its IAM; and no Unix mode
//! lets a process create files it cannot then delete. The stand-in: a backend that passes every
//! call to a real local repository except deletes, which it refuses as S3 does a credential
//! without `s3:DeleteObject`. It records every delete asked of it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bulwark_ops::Silent;
use bulwark_ops::backup::{BackupOptions, BackupSource, backup};
use bulwark_ops::check::{ReadData, check};
use bulwark_ops::copy::copy;
use bulwark_ops::forget::{ForgetOptions, forget};
use bulwark_ops::prune::{PruneOptions, prune};
use bulwark_repo::backend::{Backend, FileKind, StoreBackend, Written};
use bulwark_repo::{Credential, Repository, Settings};

/// A credential that may read and create but not delete.
struct NoDelete {
    inner: StoreBackend,
    refused: Mutex<Vec<FileKind>>,
}

impl Backend for NoDelete {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn create(
        &self,
        kind: FileKind,
        name: &str,
        data: bytes::Bytes,
    ) -> bulwark_repo::Result<Written> {
        self.inner.create(kind, name, data)
    }
    fn read(&self, kind: FileKind, name: &str) -> bulwark_repo::Result<bytes::Bytes> {
        self.inner.read(kind, name)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> bulwark_repo::Result<bytes::Bytes> {
        self.inner.read_range(kind, name, range)
    }
    fn read_tail(
        &self,
        kind: FileKind,
        name: &str,
        len: u64,
    ) -> bulwark_repo::Result<bytes::Bytes> {
        self.inner.read_tail(kind, name, len)
    }
    fn list(&self, kind: FileKind) -> bulwark_repo::Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn list_modified(
        &self,
        kind: FileKind,
    ) -> bulwark_repo::Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        self.inner.list_modified(kind)
    }
    fn remove(&self, kind: FileKind, name: &str) -> bulwark_repo::Result<()> {
        self.refused.lock().unwrap().push(kind);
        Err(bulwark_repo::Error::Backend(format!(
            "removing {}/{name}: access denied (no delete permission)",
            kind.dir()
        )))
    }
}

fn credential() -> Credential {
    Credential::Passphrase("append-only".into())
}

fn no_delete(dir: &Path) -> Arc<NoDelete> {
    Arc::new(NoDelete {
        inner: StoreBackend::local(dir, false).unwrap(),
        refused: Mutex::new(Vec::new()),
    })
}

fn full(dir: &Path, create: bool) -> Arc<dyn Backend> {
    Arc::new(StoreBackend::local(dir, create).unwrap())
}

fn backup_once(repo: &Repository, src: &Path, round: u8) -> String {
    std::fs::create_dir_all(src).unwrap();
    for i in 0..3u8 {
        let body: Vec<u8> = (0..40_000u32).map(|n| (n as u8) ^ i ^ round).collect();
        std::fs::write(src.join(format!("f{i}")), body).unwrap();
    }
    let opts = BackupOptions {
        source: BackupSource::Paths(vec![src.to_path_buf()]),
        ..Default::default()
    };
    backup(repo, opts, &Silent).unwrap().snapshot_id.to_hex()
}

fn forget_all_but_newest(repo: &Repository) -> bulwark_ops::Result<usize> {
    forget(
        repo,
        &ForgetOptions {
            rules: bulwark_policy::retention::KeepRules {
                last: Some(1),
                ..Default::default()
            },
            group_by: bulwark_policy::GroupBy::parse("host,paths").unwrap(),
            dataset: None,
            explicit: Vec::new(),
            dry_run: false,
            now: chrono::Utc::now(),
            clock_check: None,
        },
    )
    .map(|r| r.removed.len())
}

#[test]
fn backup_and_copy_need_no_delete_and_forget_without_it_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, replica, src) = (
        tmp.path().join("primary"),
        tmp.path().join("replica"),
        tmp.path().join("src"),
    );
    let maintenance =
        Repository::init(full(&primary, true), &credential(), Settings::default()).unwrap();
    Repository::init_replica(full(&replica, true), &credential(), &maintenance).unwrap();

    let host_backend = no_delete(&primary);
    let host = Repository::open(host_backend.clone(), &credential()).unwrap();
    let ids = [backup_once(&host, &src, 1), backup_once(&host, &src, 2)];
    let replica_backend = no_delete(&replica);
    let host_replica = Repository::open(replica_backend.clone(), &credential()).unwrap();
    let copied = copy(&host, &host_replica, &[], &Silent).unwrap();
    assert_eq!(copied.snapshots_copied.len(), 2);

    // The only deletes backup and copy asked for were of their own repository locks, which
    // stay behind and go stale by time; nothing else needed one.
    let refused = host_backend.refused.lock().unwrap().clone();
    assert!(!refused.is_empty(), "the locks were released by a delete");
    assert!(refused.iter().all(|k| *k == FileKind::Lock), "{refused:?}");
    assert!(
        replica_backend
            .refused
            .lock()
            .unwrap()
            .iter()
            .all(|k| *k == FileKind::Lock)
    );
    for repo in [&host, &host_replica] {
        assert!(check(repo, ReadData::All, &Silent).unwrap().ok);
        let (snaps, bad) = repo.load_snapshots().unwrap();
        assert!(bad.is_empty());
        let mut have: Vec<String> = snaps.iter().map(|(id, _)| id.to_hex()).collect();
        have.sort();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(have, want);
    }

    // Forgetting with it fails and removes nothing.
    let e = forget_all_but_newest(&host).unwrap_err();
    assert!(e.to_string().contains("access denied"), "{e}");
    assert_eq!(host.snapshot_ids().unwrap().len(), 2);

    // The maintenance host, beside the locks left behind, forgets and prunes.
    assert_eq!(forget_all_but_newest(&maintenance).unwrap(), 1);
    prune(
        &maintenance,
        &PruneOptions {
            max_unused: 0.0,
            dry_run: false,
        },
        &Silent,
    )
    .unwrap();
    assert!(check(&maintenance, ReadData::All, &Silent).unwrap().ok);
}
