//! Splitting snapshots into independent histories before applying retention.
//!
//! Restic applies a `forget` policy to each group of snapshots separately,
//! grouping by host and paths unless told otherwise (`--group-by host,paths`),
//! so that, say, `keep_last 3` keeps three snapshots *per machine and
//! directory set* instead of three in the whole repository. The same holds
//! here: group first with [`group_by`], then call
//! [`plan`](crate::retention::plan) once per group.
//!
//! ```
//! use bulwark_policy::{Candidate, GroupBy, KeepRules, WithinReference, group_by, plan};
//! # use chrono::{DateTime, Utc};
//! struct Snap { host: String, paths: Vec<String>, candidate: Candidate }
//! # let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
//! # let snaps = vec![
//! #     Snap { host: "a".into(), paths: vec!["/".into()], candidate: Candidate::new("1", t("2026-01-01T00:00:00Z")) },
//! #     Snap { host: "b".into(), paths: vec!["/".into()], candidate: Candidate::new("2", t("2026-01-02T00:00:00Z")) },
//! # ];
//! # let now: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
//! let rules = KeepRules { last: Some(1), ..Default::default() };
//! let by = GroupBy::default(); // host,paths
//! for group in group_by(&snaps, |s| by.key(&s.host, &s.paths, &[], None)) {
//!     let candidates: Vec<&Candidate> = group.items.iter().map(|s| &s.candidate).collect();
//!     let decisions = plan(&rules, &candidates, now, WithinReference::Newest)?;
//!     assert!(decisions.iter().all(|d| d.keep), "one snapshot per host: all kept");
//!     println!("{}: {decisions:?}", group.key);
//! }
//! # Ok::<(), bulwark_policy::PlanError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Items sharing one key, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<K, T> {
    pub key: K,
    pub items: Vec<T>,
}

/// Groups `items` by `key_fn`. Groups come in the order their first item
/// appears in the input, and items keep their input order within a group, so
/// the result is deterministic for a given input.
pub fn group_by<T, K, I, F>(items: I, mut key_fn: F) -> Vec<Group<K, T>>
where
    I: IntoIterator<Item = T>,
    K: Eq + Hash + Clone,
    F: FnMut(&T) -> K,
{
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<Group<K, T>> = Vec::new();
    for item in items {
        let key = key_fn(&item);
        match index.get(&key) {
            Some(&at) => groups[at].items.push(item),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    key,
                    items: vec![item],
                });
            }
        }
    }
    groups
}

/// Which snapshot fields form a group, as restic's `--group-by`. The default
/// is restic's: host and paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
    pub dataset: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
            dataset: false,
        }
    }
}

/// Why [`GroupBy::parse`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown group-by field {0:?}: expected a comma-separated list of host, paths, tags, dataset (or empty for no grouping)"
)]
pub struct GroupByError(pub String);

impl GroupBy {
    /// No grouping: the whole list is one group (restic's `--group-by ''`).
    pub const NONE: GroupBy = GroupBy {
        host: false,
        paths: false,
        tags: false,
        dataset: false,
    };

    /// Parses restic's syntax: `host,paths`, `paths,tags`, `` (none). The
    /// singular forms `path` and `tag` are accepted as well.
    pub fn parse(s: &str) -> Result<GroupBy, GroupByError> {
        let mut by = GroupBy::NONE;
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" => by.host = true,
                "paths" | "path" => by.paths = true,
                "tags" | "tag" => by.tags = true,
                "dataset" => by.dataset = true,
                other => return Err(GroupByError(other.to_string())),
            }
        }
        Ok(by)
    }

    /// The group key of a snapshot. Paths and tags are compared as sets
    /// (sorted, duplicates removed), like restic; a missing dataset groups
    /// with other snapshots without one.
    pub fn key(
        &self,
        host: &str,
        paths: &[String],
        tags: &[String],
        dataset: Option<&str>,
    ) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        GroupKey {
            host: self.host.then(|| host.to_string()),
            paths: self.paths.then(|| sorted(paths)),
            tags: self.tags.then(|| sorted(tags)),
            dataset: self.dataset.then(|| dataset.unwrap_or("").to_string()),
        }
    }
}

/// The identity of one history. A field is `None` when the grouping does not
/// use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

/// `host example, paths [/etc, /home], tags [nightly], dataset pg`, or
/// `all snapshots` when nothing is grouped on.
impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths [{}]", paths.join(", ")));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags [{}]", tags.join(", ")));
        }
        if let Some(dataset) = &self.dataset {
            if dataset.is_empty() {
                parts.push("no dataset".to_string());
            } else {
                parts.push(format!("dataset {dataset}"));
            }
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_in_first_appearance_order_and_keeps_item_order() {
        let items = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        let groups = group_by(items, |(k, _)| k.to_string());
        let shape: Vec<(String, Vec<i32>)> = groups
            .into_iter()
            .map(|g| (g.key, g.items.into_iter().map(|(_, n)| n).collect()))
            .collect();
        assert_eq!(
            shape,
            [
                ("b".to_string(), vec![1, 3]),
                ("a".to_string(), vec![2, 5]),
                ("c".to_string(), vec![4]),
            ]
        );
        let empty: Vec<Group<String, i32>> = group_by(Vec::<i32>::new(), |n| n.to_string());
        assert!(empty.is_empty());
    }

    #[test]
    fn group_by_borrows_or_owns() {
        let items = vec![1, 2, 3, 4];
        let by_ref = group_by(&items, |n| **n % 2);
        assert_eq!(by_ref[0].items, [&1, &3]);
        let owned = group_by(items, |n| *n % 2);
        assert_eq!(
            owned[1],
            Group {
                key: 0,
                items: vec![2, 4]
            }
        );
    }

    #[test]
    fn group_by_parses_restic_syntax() {
        assert_eq!(GroupBy::parse("host,paths").unwrap(), GroupBy::default());
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::NONE);
        assert_eq!(
            GroupBy::parse(" path , tag,dataset").unwrap(),
            GroupBy {
                host: false,
                paths: true,
                tags: true,
                dataset: true
            }
        );
        let err = GroupBy::parse("host,user").unwrap_err();
        assert_eq!(err, GroupByError("user".into()));
        assert!(err.to_string().contains("host, paths, tags, dataset"));
    }

    #[test]
    fn keys_compare_paths_and_tags_as_sets() {
        let by = GroupBy::parse("host,paths,tags,dataset").unwrap();
        let a = by.key("h", &strings(&["/b", "/a"]), &strings(&["y", "x"]), None);
        let b = by.key(
            "h",
            &strings(&["/a", "/b", "/a"]),
            &strings(&["x", "y"]),
            Some(""),
        );
        assert_eq!(a, b);
        assert_eq!(
            a.to_string(),
            "host h, paths [/a, /b], tags [x, y], no dataset"
        );
        let c = by.key(
            "h",
            &strings(&["/a", "/b"]),
            &strings(&["x", "y"]),
            Some("pg"),
        );
        assert_ne!(a, c);
        assert_eq!(
            c.to_string(),
            "host h, paths [/a, /b], tags [x, y], dataset pg"
        );
        // Fields that are not grouped on do not split groups.
        let host_only = GroupBy {
            host: true,
            ..GroupBy::NONE
        };
        assert_eq!(
            host_only.key("h", &strings(&["/a"]), &[], None),
            host_only.key("h", &strings(&["/z"]), &strings(&["t"]), Some("d"))
        );
        assert_eq!(
            GroupBy::NONE.key("h", &[], &[], None).to_string(),
            "all snapshots"
        );
    }
}
