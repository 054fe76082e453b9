//! Finding things inside snapshots: `ID[:PATH]` specs and tree walks.

use std::path::{Component, Path, PathBuf};

use bulwark_repo::tree::MAX_DEPTH;
use bulwark_repo::{
    Error, Id, MasterIndex, Node, NodeKind, Repository, Result, Snapshot, SnapshotFilter, Tree,
};

/// A snapshot, and optionally a path inside it (`3fa2c1d9:/srv/data/sub`).
pub struct Selection {
    pub id: Id,
    pub snapshot: Snapshot,
    pub path: PathBuf,
    /// The node at `path`; `None` for the snapshot's root.
    pub node: Option<Node>,
}

pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((snap, path)) => (snap, Some(path)),
        None => (spec, None),
    }
}

pub fn select(
    repo: &Repository,
    index: &MasterIndex,
    spec: &str,
    sub: Option<&str>,
) -> Result<Selection> {
    select_filtered(repo, index, spec, sub, &SnapshotFilter::default())
}

/// [`select`], with `latest` meaning the latest snapshot that `filter` takes.
pub fn select_filtered(
    repo: &Repository,
    index: &MasterIndex,
    spec: &str,
    sub: Option<&str>,
    filter: &SnapshotFilter,
) -> Result<Selection> {
    let (snap_spec, inline) = split_spec(spec);
    let (id, snapshot) = repo.find_snapshot(snap_spec, |s| filter.matches(s))?;
    let path = PathBuf::from(inline.or(sub).unwrap_or("/"));
    let mut node: Option<Node> = None;
    let mut tree = repo.load_tree(index, &snapshot.tree)?;
    for c in path.components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::RootDir | Component::CurDir => continue,
            _ => {
                return Err(Error::Invalid(format!(
                    "'{}' must be an absolute path without '..'",
                    path.display()
                )));
            }
        };
        if let Some(n) = &node {
            tree = load_subtree(repo, index, n)?;
        }
        let found = tree.find(name).cloned().ok_or_else(|| Error::NotFound {
            what: format!("'{}' in snapshot {}", path.display(), id.short()),
        })?;
        node = Some(found);
    }
    Ok(Selection {
        id,
        snapshot,
        path,
        node,
    })
}

pub fn load_subtree(repo: &Repository, index: &MasterIndex, node: &Node) -> Result<Tree> {
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(id)) => repo.load_tree(index, &id),
        _ => Err(Error::Invalid(format!(
            "'{}' is not a directory",
            node.name
        ))),
    }
}

/// The tree whose entries a selection denotes: the root's, a directory's, or a single file's.
pub fn selected_tree(repo: &Repository, index: &MasterIndex, sel: &Selection) -> Result<Tree> {
    match &sel.node {
        None => repo.load_tree(index, &sel.snapshot.tree),
        Some(n) if n.kind == NodeKind::Dir => load_subtree(repo, index, n),
        Some(n) => Ok(Tree {
            nodes: vec![n.clone()],
        }),
    }
}

/// Visit every node below `tree` depth-first, with its path relative to `base`. The walk keeps
/// its own stack (one entry per level, at most `MAX_DEPTH`): a crafted chain of directories
/// ends in an error, not in the end of the thread's stack.
pub fn walk(
    repo: &Repository,
    index: &MasterIndex,
    tree: &Tree,
    base: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    let mut stack = vec![(tree.nodes.clone().into_iter(), base.to_path_buf())];
    while let Some((nodes, dir)) = stack.last_mut() {
        let Some(node) = nodes.next() else {
            stack.pop();
            continue;
        };
        let path = dir.join(node.os_name()?);
        visit(&path, &node)?;
        if node.kind == NodeKind::Dir {
            if stack.len() >= MAX_DEPTH {
                return Err(Error::corrupt(
                    "tree",
                    format!(
                        "directories nest more than {MAX_DEPTH} deep, deeper than any path can be"
                    ),
                ));
            }
            let sub = load_subtree(repo, index, &node)?;
            stack.push((sub.nodes.into_iter(), path));
        }
    }
    Ok(())
}
