//! How far a replica lags its primary, and healing a primary from a replica.

use std::collections::BTreeMap;

use bulwark_repo::lock::LockKind;
use bulwark_repo::{Error, FileKind, Id, Repository};
use serde::Serialize;

use bulwark_repo::transfer::{copied_origins, fetch_pack, land_pack};

#[derive(Serialize, Debug, Default)]
pub struct ReplicaStatus {
    pub primary_snapshots: usize,
    pub replica_snapshots: usize,
    /// Snapshots on the primary that the replica lacks, and the reverse.
    pub missing_on_replica: Vec<String>,
    pub missing_on_primary: Vec<String>,
    /// Packs (and their bytes) the primary indexes that the replica does not store.
    pub packs_missing_on_replica: usize,
    pub bytes_missing_on_replica: u64,
    pub shares_key: bool,
    pub in_sync: bool,
}

pub fn status(primary: &Repository, replica: &Repository) -> crate::Result<ReplicaStatus> {
    let p: Vec<Id> = primary.snapshot_ids()?;
    let r: Vec<Id> = replica.snapshot_ids()?;
    let mut st = ReplicaStatus {
        primary_snapshots: p.len(),
        replica_snapshots: r.len(),
        shares_key: primary.shares_key_with(replica),
        ..Default::default()
    };
    if st.shares_key {
        st.missing_on_replica = p
            .iter()
            .filter(|id| !r.contains(id))
            .map(Id::to_hex)
            .collect();
        st.missing_on_primary = r
            .iter()
            .filter(|id| !p.contains(id))
            .map(Id::to_hex)
            .collect();
        let stored: std::collections::HashSet<String> = replica
            .backend()
            .list(FileKind::Pack)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for pack in primary.load_index()?.packs() {
            if !stored.contains(&pack.id.to_hex()) {
                st.packs_missing_on_replica += 1;
                st.bytes_missing_on_replica += pack.size;
            }
        }
    } else {
        // Re-encrypted copies carry their origin instead of sharing ids.
        let origins = copied_origins(replica)?;
        st.missing_on_replica = p
            .iter()
            .map(Id::to_hex)
            .filter(|h| !origins.contains(h))
            .collect();
    }
    st.in_sync = st.missing_on_replica.is_empty();
    Ok(st)
}

#[derive(Serialize, Debug, Default)]
pub struct RepairPacksReport {
    pub packs_checked: usize,
    pub replaced: Vec<String>,
    /// Damaged or missing packs the replica could not supply.
    pub unrecoverable: Vec<String>,
}

/// Find packs the primary's index needs that are missing, truncated or damaged (by hash), and
/// copy good ones back from the replica, verified by hash on both sides.
pub fn repair_packs(
    primary: &Repository,
    replica: &Repository,
) -> crate::Result<RepairPacksReport> {
    let _lock = primary.lock(LockKind::Exclusive)?;
    let index = primary.load_index()?;
    let stored: BTreeMap<String, u64> = primary
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .collect();
    let mut report = RepairPacksReport::default();
    for pack in index.packs() {
        report.packs_checked += 1;
        let name = pack.id.to_hex();
        let healthy = match stored.get(&name) {
            Some(&size) if size == pack.size => match primary.backend().read(FileKind::Pack, &name)
            {
                Ok(data) => Id::of_stored(&data) == pack.id,
                Err(_) => false,
            },
            _ => false,
        };
        if healthy {
            continue;
        }
        // Only a verified good copy replaces the damaged one, which is kept otherwise.
        match fetch_pack(replica, &pack.id, pack.size) {
            Ok((data, _)) => {
                primary.backend().remove(FileKind::Pack, &name)?;
                land_pack(primary, &pack.id, data)?;
                report.replaced.push(name);
            }
            Err(Error::NotFound { .. }) | Err(Error::Corrupt { .. }) => {
                report.unrecoverable.push(name)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
