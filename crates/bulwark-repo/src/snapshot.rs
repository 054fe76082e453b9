//! Snapshots: the last object a backup writes, and what makes it visible.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::id::Id;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub files_unreadable: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    pub bytes_read: u64,
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub bytes_added_stored: u64,
    pub duration_s: f64,
    /// Files whose size or times changed while they were read: stored as read, possibly torn.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_changed_while_read: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub time: DateTime<FixedOffset>,
    pub tree: Id,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    /// The numeric user and group of the process that took the snapshot, beside the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The snapshot this one was changed from by `tag` or `rewrite` (the first of the line),
    /// as restic records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Whether this backup recorded extended attributes (ACLs, capabilities): snapshots written
    /// before they were stored have none, which says nothing about the files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub xattrs: bool,
    /// Facts recorded by sources for later verification (row counts, versions, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
}

impl Snapshot {
    /// Snapshots of the same host and set of paths form one history (parents, retention groups).
    pub fn same_source(&self, host: &str, paths: &[String]) -> bool {
        if self.hostname != host || self.paths.len() != paths.len() {
            return false;
        }
        let mut a = self.paths.clone();
        let mut b = paths.to_vec();
        a.sort();
        b.sort();
        a == b
    }
}

/// restic's snapshot filters (`--host`, `--tag`, `--path`), for `latest` and for listings:
/// any of the hosts; any of the tag groups, each a comma-separated list the snapshot must all
/// have; every one of the paths. An empty filter takes every snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|group| {
                    group
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .all(|t| s.tags.iter().any(|have| have == t))
                }))
            && self.paths.iter().all(|p| s.paths.contains(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_any_host_any_tag_group_and_every_path() {
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "tree": Id::default(), "paths": ["/a", "/b"],
            "hostname": "h1", "username": "u", "tags": ["x", "y"], "program_version": "t"
        }))
        .unwrap();
        let f = |hosts: &[&str], tags: &[&str], paths: &[&str]| SnapshotFilter {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f(&[], &[], &[]).matches(&snap));
        assert!(f(&["h2", "h1"], &["x,y"], &["/a"]).matches(&snap));
        assert!(!f(&["h2"], &[], &[]).matches(&snap));
        assert!(!f(&[], &["x,z"], &[]).matches(&snap));
        assert!(f(&[], &["x,z", "y"], &[]).matches(&snap));
        assert!(!f(&[], &[], &["/a", "/c"]).matches(&snap));
    }
}
