//! `bulwark snapshots`: list snapshots, oldest first; with `--group-by`, in groups (restic's
//! `host`, `paths`, `tags`), and with `--latest N` only the newest N of each group.

use std::collections::BTreeMap;

use bulwark_repo::{Id, Snapshot};
use serde_json::json;

use super::{FilterArgs, emit, open, plural};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots of each group (groups: host and paths unless --group-by)
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Group by any of host, paths, tags (comma-separated), e.g. host,paths
    #[arg(long, value_name = "FIELDS")]
    pub group_by: Option<String>,
}

/// What a group is keyed by.
#[derive(Default, Clone, Copy)]
struct GroupBy {
    host: bool,
    paths: bool,
    tags: bool,
}

impl GroupBy {
    fn parse(s: &str) -> CliResult<GroupBy> {
        let mut g = GroupBy::default();
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(Failure::usage(
                        format!("bad --group-by field '{other}'"),
                        "group by host, paths and/or tags, e.g. --group-by host,paths",
                    ));
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &Snapshot) -> serde_json::Value {
        let mut key = serde_json::Map::new();
        if self.host {
            key.insert("hostname".into(), json!(s.hostname));
        }
        if self.paths {
            let mut p = s.paths.clone();
            p.sort();
            key.insert("paths".into(), json!(p));
        }
        if self.tags {
            let mut t = s.tags.clone();
            t.sort();
            key.insert("tags".into(), json!(t));
        }
        serde_json::Value::Object(key)
    }
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let group_by = match &a.group_by {
        Some(spec) => Some(GroupBy::parse(spec)?),
        None => None,
    };
    let repo = open(g)?;
    let (snaps, bad) = repo.load_snapshots()?;
    for e in &bad {
        eprintln!("warning: {e}");
    }
    let filter = a.filter.filter();
    let by = group_by.unwrap_or(GroupBy {
        host: true,
        paths: true,
        tags: false,
    });
    // Oldest first within each group, groups in the order of their first snapshot.
    let mut groups: Vec<(serde_json::Value, Vec<(Id, Snapshot)>)> = Vec::new();
    let mut position: BTreeMap<String, usize> = BTreeMap::new();
    for (id, s) in snaps.into_iter().filter(|(_, s)| filter.matches(s)) {
        let key = if group_by.is_some() || a.latest.is_some() {
            by.key(&s)
        } else {
            json!({})
        };
        let i = *position.entry(key.to_string()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((id, s));
    }
    if let Some(n) = a.latest {
        for (_, list) in &mut groups {
            let drop = list.len().saturating_sub(n);
            list.drain(..drop);
        }
    }
    let doc = |list: &[(Id, Snapshot)]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).expect("snapshots serialise");
                v["id"] = json!(id);
                v["short_id"] = json!(id.short());
                v
            })
            .collect()
    };
    let json = match group_by {
        Some(_) => json!(
            groups
                .iter()
                .map(|(key, list)| json!({ "group_key": key, "snapshots": doc(list) }))
                .collect::<Vec<_>>()
        ),
        None => json!(
            groups
                .iter()
                .flat_map(|(_, list)| doc(list))
                .collect::<Vec<_>>()
        ),
    };
    emit(g, &json, || {
        let all: Vec<&(Id, Snapshot)> = groups.iter().flat_map(|(_, l)| l).collect();
        let width = |f: &dyn Fn(&Snapshot) -> String, title: &str| {
            all.iter()
                .map(|(_, s)| f(s).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        let host_w = width(&|s| s.hostname.clone(), "Host");
        let tags_w = width(&|s| s.tags.join(","), "Tags");
        let header = format!(
            "{:<10} {:<25} {:<host_w$} {:<tags_w$} Paths",
            "ID", "Time", "Host", "Tags"
        );
        let mut out = String::new();
        for (key, list) in &groups {
            if group_by.is_some() {
                out += &format!("snapshots for {}:\n", describe_key(key));
            }
            out += &header;
            out.push('\n');
            for (id, s) in list {
                out += &format!(
                    "{:<10} {:<25} {:<host_w$} {:<tags_w$} {}\n",
                    id.short(),
                    s.time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
                    s.hostname,
                    s.tags.join(","),
                    s.paths.join(" ")
                );
            }
            if group_by.is_some() {
                out.push('\n');
            }
        }
        out += &plural(all.len(), "snapshot", "snapshots");
        out
    });
    Ok(0)
}

fn describe_key(key: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(h) = key["hostname"].as_str() {
        parts.push(format!("host [{h}]"));
    }
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if key.get("paths").is_some() {
        parts.push(format!("paths [{}]", list(&key["paths"])));
    }
    if key.get("tags").is_some() {
        parts.push(format!("tags [{}]", list(&key["tags"])));
    }
    parts.join(", ")
}
