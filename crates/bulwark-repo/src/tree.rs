//! Trees: one directory's entries, stored as a JSON blob (self-describing, so fields can be added
//! without a format break) and deduplicated like data.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The name as UTF-8 (lossy when the file system name is not valid UTF-8).
    pub name: String,
    /// The exact name bytes, base64, present only when `name` is lossy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_raw: Option<String>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub device: u64,
    #[serde(default)]
    pub links: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target_raw: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

/// Store an OS string as UTF-8 when it is, and as exact bytes beside a readable form when not.
fn encode_os(s: &OsStr) -> (String, Option<String>) {
    match s.to_str() {
        Some(utf8) => (utf8.to_string(), None),
        None => (
            s.to_string_lossy().into_owned(),
            Some(B64.encode(s.as_bytes())),
        ),
    }
}

fn decode_os(text: &str, raw: &Option<String>) -> Result<OsString> {
    match raw {
        None => Ok(OsString::from(text)),
        Some(b) => B64
            .decode(b)
            .map(OsString::from_vec)
            .map_err(|_| Error::corrupt("tree", format!("bad raw name for '{text}'"))),
    }
}

impl Node {
    pub fn new(name: &OsStr, kind: NodeKind) -> Node {
        let (name, name_raw) = encode_os(name);
        Node {
            name,
            name_raw,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            device: 0,
            links: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            link_target: None,
            link_target_raw: None,
            rdev: 0,
        }
    }

    pub fn os_name(&self) -> Result<OsString> {
        decode_os(&self.name, &self.name_raw)
    }

    /// The name's bytes, borrowed unless the name is not UTF-8 (undecodable: empty).
    fn name_bytes(&self) -> Cow<'_, [u8]> {
        match &self.name_raw {
            None => Cow::Borrowed(self.name.as_bytes()),
            Some(_) => Cow::Owned(self.os_name().unwrap_or_default().into_vec()),
        }
    }

    pub fn set_link_target(&mut self, target: &OsStr) {
        let (t, raw) = encode_os(target);
        self.link_target = Some(t);
        self.link_target_raw = raw;
    }

    pub fn link_target(&self) -> Result<OsString> {
        match &self.link_target {
            Some(t) => decode_os(t, &self.link_target_raw),
            None => Err(Error::corrupt(
                "tree",
                format!("symlink '{}' has no target", self.name),
            )),
        }
    }

    /// A name is safe to join onto a restore target: one component, no `..`, no separators.
    pub fn has_safe_name(&self) -> bool {
        match self.os_name() {
            Ok(n) => {
                let b = n.as_bytes();
                !b.is_empty() && b != b"." && b != b".." && !b.contains(&b'/') && !b.contains(&0)
            }
            Err(_) => false,
        }
    }
}

/// How deep below a snapshot's root a tree may nest. A path needs at least two bytes per level
/// and Linux paths end at 4096 bytes, so backup cannot read anything deeper; a deeper tree was
/// crafted, and walks (restore, check, ls, prune) stop there with an error instead of running
/// down a chain of 100,000 directories.
pub const MAX_DEPTH: usize = 2048;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees serialise")
    }

    /// Parse a stored tree. Bulwark stores trees sorted; one that is not (written by hand) is
    /// sorted here, so lookups by name can always bisect.
    pub fn from_bytes(id: &Id, bytes: &[u8]) -> Result<Tree> {
        let mut tree: Tree =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("tree {id}"), e))?;
        if !tree
            .nodes
            .is_sorted_by(|a, b| a.name_bytes() <= b.name_bytes())
        {
            tree.sort();
        }
        Ok(tree)
    }

    /// Sort by raw name so a tree's bytes, and so its id, depend only on its content.
    pub fn sort(&mut self) {
        self.nodes
            .sort_by(|a, b| a.name_bytes().cmp(&b.name_bytes()));
    }

    /// The node called `name`, by bisection (trees are sorted): a backup compares every file
    /// with its parent snapshot's entry, and a linear scan made directories of thousands of
    /// files quadratic.
    pub fn find(&self, name: &OsStr) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name_bytes().as_ref().cmp(name.as_bytes()))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tree: &Tree) -> Vec<OsString> {
        tree.nodes.iter().map(|n| n.os_name().unwrap()).collect()
    }

    #[test]
    fn every_name_is_found_in_sorted_and_in_hand_written_unsorted_trees() {
        let all: Vec<OsString> = ["b", "a", "é", "Z", "file-10", "file-9"]
            .iter()
            .map(OsString::from)
            .chain([
                OsString::from_vec(vec![0xff, b'x']),
                OsString::from_vec(vec![b'a', 0x80]),
            ])
            .collect();
        let unsorted = Tree {
            nodes: all.iter().map(|n| Node::new(n, NodeKind::File)).collect(),
        };
        let loaded = Tree::from_bytes(&Id::of_stored(b"t"), &unsorted.to_bytes()).unwrap();
        let mut sorted = unsorted.clone();
        sorted.sort();
        assert_eq!(names(&loaded), names(&sorted));
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(names(&sorted), expected);
        for name in &all {
            assert_eq!(
                loaded.find(name).map(|n| n.os_name().unwrap()).as_ref(),
                Some(name)
            );
        }
        assert!(loaded.find(OsStr::new("missing")).is_none());
    }
}
