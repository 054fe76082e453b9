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
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub time: DateTime<FixedOffset>,
    pub tree: Id,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
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
