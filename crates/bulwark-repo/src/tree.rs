//! Trees: one directory's entries, stored as a JSON blob (self-describing, so fields can be added
//! without a format break) and deduplicated like data.
//!
//! A tree's id is the hash of its bytes, so everything stored in a node decides whether a
//! directory "changed". What is stored, and why:
//!
//! - Type, mode, owner (ids and names), mtime, ctime, inode, device, link count, size, content,
//!   subtree, link target and device number, as `stat` gives them.
//! - Extended attributes (`xattrs`), each name with its value in base64. POSIX ACLs are the
//!   `system.posix_acl_access` and `system.posix_acl_default` attributes and file capabilities
//!   `security.capability`, so they travel with them. Written by bulwark 0.1 since this field
//!   existed; trees written before have none (the field defaults to empty) and snapshots say
//!   whether they recorded attributes (`Snapshot::xattrs`).
//! - Hard links need no field of their own: files with `links > 1` and the same `device` and
//!   `inode` are one file, and restore links them again. Older snapshots carry these fields too.
//! - The access time is *not* stored (`atime_ns` is absent in new trees): reading a directory
//!   or a file updates it, and with it every tree above, so a no-change backup of a tree that
//!   was merely read would store every directory again. Restore sets atime to mtime, as restic
//!   does by default. Trees written before this change carry `atime_ns`, which restore honours.

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
    /// Only in trees written before access times were left out (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime_ns: Option<i64>,
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
    /// Extended attributes, sorted by name (see the module docs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute: its name (UTF-8, or base64 bytes in `name_raw` when not) and value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_raw: Option<String>,
    /// The value, base64.
    pub value: String,
}

impl Xattr {
    pub fn new(name: &OsStr, value: &[u8]) -> Xattr {
        let (name, name_raw) = encode_os(name);
        Xattr {
            name,
            name_raw,
            value: B64.encode(value),
        }
    }

    pub fn os_name(&self) -> Result<OsString> {
        decode_os(&self.name, &self.name_raw)
    }

    pub fn value(&self) -> Result<Vec<u8>> {
        B64.decode(&self.value)
            .map_err(|_| Error::corrupt("tree", format!("bad value of attribute '{}'", self.name)))
    }
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
            atime_ns: None,
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
            xattrs: Vec::new(),
        }
    }

    pub fn os_name(&self) -> Result<OsString> {
        decode_os(&self.name, &self.name_raw)
    }

    /// Whether this node is one of several names of one file (a hard link), and which file.
    pub fn hard_link_key(&self) -> Option<(u64, u64)> {
        (self.kind == NodeKind::File && self.links > 1 && self.inode != 0)
            .then_some((self.device, self.inode))
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

    #[test]
    fn trees_written_before_xattrs_and_without_atime_still_load() {
        let old = br#"{"nodes":[{"name":"f","type":"file","mode":420,"uid":0,"gid":0,
            "mtime_ns":5,"atime_ns":7,"ctime_ns":6,"inode":3,"device":1,"links":2,"size":0}]}"#;
        let tree = Tree::from_bytes(&Id::of_stored(b"t"), old).unwrap();
        let n = &tree.nodes[0];
        assert_eq!((n.atime_ns, n.xattrs.len()), (Some(7), 0));
        assert_eq!(n.hard_link_key(), Some((1, 3)));
        let mut new = n.clone();
        new.atime_ns = None;
        new.xattrs = vec![Xattr::new(OsStr::new("user.k"), b"v")];
        let bytes = Tree {
            nodes: vec![new.clone()],
        }
        .to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("atime"), "{text}");
        let back = Tree::from_bytes(&Id::of_stored(b"u"), &bytes).unwrap();
        assert_eq!(back.nodes[0], new);
        assert_eq!(back.nodes[0].xattrs[0].value().unwrap(), b"v");
    }
}
