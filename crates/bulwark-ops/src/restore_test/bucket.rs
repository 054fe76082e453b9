//! Restore tests of bucket snapshots (`kind = "s3"`): the file test (structure, then a restore
//! into a scratch directory with every byte and every `user.s3.*` attribute re-read and
//! compared with the snapshot, sampled when over budget), and the fingerprint: the objects,
//! bytes and digest of keys, ETags and metadata the snapshot's nodes hold must be what the
//! backup listed and read. Together they prove the restored objects are the source's, as it was.

use std::path::Path;
use std::time::Instant;

use bulwark_policy::human_size;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{Id, Repository, Snapshot};

use super::{RestoreTestOptions, RestoreTestReport};
use crate::bucket::{Fingerprint, fingerprint_of_tree};
use crate::error::Result;
use crate::progress::Progress;

pub(super) fn test(
    repo: &Repository,
    id: &Id,
    snap: &Snapshot,
    recorded: &Fingerprint,
    opts: &RestoreTestOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    let mut report = super::files::test(repo, id, snap, opts, scratch, progress)?;
    report.kind = "s3".into();
    let started = Instant::now();
    let found = {
        let _lock = repo.lock(LockKind::Shared)?;
        let index = repo.load_index()?;
        repo.load_tree(&index, &snap.tree)
            .map_err(Into::into)
            .and_then(|tree| fingerprint_of_tree(repo, &index, &tree, &recorded.source))
    };
    match found {
        Ok(f) if f == *recorded => report.check(
            "fingerprint",
            true,
            format!(
                "{} objects ({}) with the keys, ETags and metadata listed at backup from {}",
                f.objects,
                human_size(f.bytes),
                f.source
            ),
        ),
        Ok(f) => report.check(
            "fingerprint",
            false,
            format!(
                "the snapshot holds {} objects ({}, digest {}); the backup read {} ({}, digest {})",
                f.objects,
                human_size(f.bytes),
                &f.digest[..12],
                recorded.objects,
                human_size(recorded.bytes),
                recorded.digest.get(..12).unwrap_or(&recorded.digest)
            ),
        ),
        Err(e) => report.check("fingerprint", false, e.to_string()),
    }
    report.phase("fingerprint", started.elapsed());
    report.duration_s += started.elapsed().as_secs_f64();
    Ok(report)
}
