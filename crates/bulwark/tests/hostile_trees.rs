//! Crafted trees, written through the library with the repository key as a compromised host
//! could: names `..`, `.`, `a/b`, absolute, empty and with NUL bytes (plain and as raw bytes),
//! names that collide once decoded, a symlink and a directory of the same name, files claiming
//! 2^62 bytes over a few, 100,000-deep nesting, a tree that contains itself, a directory of
//! 100,000 entries.
//!
//! `restore` must refuse (or skip with an error), write nothing outside its target, never follow
//! a symlink it made, never hang (every run has a watchdog) or crash; `check` must report the
//! damage; `ls` must not crash either. Every command run here also asserts there was no panic.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use bulwark_repo::writer::BlobWriter;
use bulwark_repo::{BlobKind, Id, Node, NodeKind, Tree};
use common::*;
use serde_json::Value;

/// Where a restore may write (`target`) and what it must leave alone (`victim`, a directory the
/// crafted symlinks point at, holding one sentinel file).
struct Scene {
    base: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let base = tempdir("bulwark-hostile-");
        fs::create_dir(base.path().join("victim")).unwrap();
        fs::write(base.path().join("victim/sentinel"), b"untouched").unwrap();
        Scene { base }
    }

    fn victim(&self) -> PathBuf {
        self.base.path().join("victim")
    }

    /// A fresh, empty restore target; `occupied` puts a file in it first, so restore takes the
    /// path that checks every entry against what is already there.
    fn target(&self, occupied: bool) -> PathBuf {
        let target = self.base.path().join("target");
        let _ = fs::remove_dir_all(&target);
        if occupied {
            fs::create_dir(&target).unwrap();
            fs::write(target.join("already-here"), b"x").unwrap();
        }
        target
    }

    /// Nothing outside the target changed: the base holds only `victim` and `target`, and the
    /// victim only its sentinel.
    #[track_caller]
    fn assert_contained(&self, what: &str) {
        let mut top: Vec<String> = fs::read_dir(self.base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert!(
            top == ["target", "victim"] || top == ["victim"],
            "{what}: restore wrote beside its target: {top:?}"
        );
        let victim: Vec<PathBuf> = files_below(&self.victim());
        assert_eq!(
            victim,
            vec![self.victim().join("sentinel")],
            "{what}: restore wrote through a symlink into the victim"
        );
        assert_eq!(
            fs::read(self.victim().join("sentinel")).unwrap(),
            b"untouched"
        );
    }
}

/// Save a snapshot whose root tree `build` makes with the writer; returns its id.
fn craft(repo: &Repo, build: impl FnOnce(&BlobWriter) -> bulwark_repo::Result<Id>) -> String {
    let lib = repo.open_lib();
    let index = lib.load_index().unwrap();
    let (root, _) = BlobWriter::run(&lib, &index, 1, build).unwrap();
    let snapshot: bulwark_repo::Snapshot = serde_json::from_value(serde_json::json!({
        "time": "2024-01-01T00:00:00Z", "tree": root, "paths": ["/crafted"],
        "hostname": "crafted", "username": "crafted", "program_version": "crafted",
    }))
    .unwrap();
    lib.save_snapshot(&snapshot).unwrap().to_hex()
}

fn file(w: &BlobWriter, name: &[u8], content: &[u8]) -> bulwark_repo::Result<Node> {
    let mut node = Node::new(OsStr::from_bytes(name), NodeKind::File);
    (node.mode, node.size) = (0o644, content.len() as u64);
    if !content.is_empty() {
        node.content = vec![w.save(BlobKind::Data, content)?];
    }
    Ok(node)
}

fn dir(w: &BlobWriter, name: &[u8], nodes: Vec<Node>) -> bulwark_repo::Result<Node> {
    let mut node = Node::new(OsStr::from_bytes(name), NodeKind::Dir);
    node.mode = 0o755;
    node.subtree = Some(w.save(BlobKind::Tree, &Tree { nodes }.to_bytes())?);
    Ok(node)
}

fn symlink(name: &[u8], to: &Path) -> Node {
    let mut node = Node::new(OsStr::from_bytes(name), NodeKind::Symlink);
    node.mode = 0o777;
    node.set_link_target(to.as_os_str());
    node
}

fn root(w: &BlobWriter, nodes: Vec<Node>) -> bulwark_repo::Result<Id> {
    w.save(BlobKind::Tree, &Tree { nodes }.to_bytes())
}

/// Restore `id` into a fresh and into an occupied target: both must fail with one error line
/// (exit 1) or, where `may_succeed`, succeed; never escape.
#[track_caller]
fn restore_refused(repo: &Repo, scene: &Scene, id: &str, what: &str) -> Vec<Out> {
    let mut outs = Vec::new();
    for occupied in [false, true] {
        let target = scene.target(occupied);
        let out = repo.restore(id, &target, &[]);
        assert_eq!(
            out.code,
            1,
            "{what} (occupied target: {occupied}):\n{}",
            out.describe()
        );
        assert!(
            out.stderr.lines().any(|l| l.starts_with("error:")),
            "{what}: no error line:\n{}",
            out.describe()
        );
        scene.assert_contained(what);
        outs.push(out);
    }
    outs
}

/// `check` must fail and say something about the damage.
#[track_caller]
fn check_reports(repo: &Repo, what: &str, needle: &str) -> Value {
    let (out, report) = repo.check(&[]);
    assert_eq!(
        out.code,
        1,
        "check passed a repository holding {what}:\n{}",
        out.describe()
    );
    let errors = report["errors"].to_string();
    assert!(
        errors.contains(needle),
        "check's errors do not mention {needle:?} for {what}: {errors}"
    );
    report
}

/// Remove every snapshot, so the next case's `check` sees only its own.
fn forget_all(repo: &Repo) {
    for e in fs::read_dir(repo.path.join("snapshots")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn unsafe_names_are_refused_at_every_depth() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let absolute = scene.base.path().join("escaped-absolute");
    let names: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b".".to_vec(),
        b"a/b".to_vec(),
        b"../../escaped".to_vec(),
        absolute.as_os_str().as_bytes().to_vec(),
        b"".to_vec(),
        b"nul\0byte".to_vec(),
    ];
    for name in &names {
        for (depth, raw) in [(0, false), (3, false), (0, true), (2, true)] {
            let what = format!(
                "name {:?} at depth {depth}{}",
                name.escape_ascii().to_string(),
                if raw { " (raw bytes)" } else { "" }
            );
            let id = craft(&repo, |w| {
                let mut node = file(w, if raw { b"innocent" } else { name }, b"escaped")?;
                if raw {
                    node.name_raw = Some(b64(name));
                }
                let mut nodes = vec![file(w, b"fine", b"fine")?, node];
                for level in 0..depth {
                    nodes = vec![dir(w, format!("level{level}").as_bytes(), nodes)?];
                }
                root(w, nodes)
            });
            let outs = restore_refused(&repo, &scene, &id, &what);
            assert!(
                outs[0].stderr.contains("unsafe file name"),
                "{what}:\n{}",
                outs[0].describe()
            );
            assert!(!absolute.exists(), "{what}: wrote the absolute path");
            check_reports(&repo, &what, "unsafe file name");
            forget_all(&repo);
        }
    }
    // A raw name that is not base64 cannot be decoded at all.
    let id = craft(&repo, |w| {
        let mut node = file(w, b"x", b"data")?;
        node.name_raw = Some("not base64 !".into());
        root(w, vec![node])
    });
    restore_refused(&repo, &scene, &id, "an undecodable raw name");
    check_reports(&repo, "an undecodable raw name", "name");
}

#[test]
fn names_that_collide_once_decoded_are_refused() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    // "a" and a node whose raw bytes are "a": one file system name, two entries.
    let id = craft(&repo, |w| {
        let mut twin = file(w, b"zzz", b"second")?;
        twin.name_raw = Some(b64(b"a"));
        root(w, vec![file(w, b"a", b"first")?, twin])
    });
    let outs = restore_refused(&repo, &scene, &id, "a raw name equal to another name");
    assert!(
        outs[0].stderr.contains("appears twice"),
        "{}",
        outs[0].describe()
    );
    check_reports(&repo, "a name twice in one directory", "appears twice");
    forget_all(&repo);

    // NFC and NFD spellings are different names on Linux: both restore, each with its own data.
    let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
    let id = craft(&repo, |w| {
        root(
            w,
            vec![
                file(w, nfc.as_bytes(), b"nfc")?,
                file(w, nfd.as_bytes(), b"nfd")?,
            ],
        )
    });
    let target = scene.target(false);
    repo.restore(&id, &target, &[]).assert_ok();
    assert_eq!(fs::read(target.join(nfc)).unwrap(), b"nfc");
    assert_eq!(fs::read(target.join(nfd)).unwrap(), b"nfd");
    scene.assert_contained("NFC and NFD names");
    let (out, _) = repo.check(&[]);
    out.assert_ok();
}

#[test]
fn a_symlink_and_an_entry_of_the_same_name_cannot_redirect_writes() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let victim = scene.victim();
    for (order, what) in [
        (false, "symlink then directory"),
        (true, "directory then symlink"),
    ] {
        for depth in [0, 2] {
            let id = craft(&repo, |w| {
                let inner = vec![file(w, b"planted", b"planted")?];
                let mut nodes = vec![symlink(b"d", &victim), dir(w, b"d", inner)?];
                if order {
                    nodes.reverse();
                }
                for level in 0..depth {
                    nodes = vec![dir(w, format!("l{level}").as_bytes(), nodes)?];
                }
                root(w, nodes)
            });
            restore_refused(&repo, &scene, &id, what);
            check_reports(&repo, what, "appears twice");
            forget_all(&repo);
        }
    }
    // A symlink and a file of the same name: the file's data must not go through the link.
    let id = craft(&repo, |w| {
        root(
            w,
            vec![
                symlink(b"f", &victim.join("sentinel")),
                file(w, b"f", b"overwritten")?,
            ],
        )
    });
    restore_refused(&repo, &scene, &id, "symlink then file");
    forget_all(&repo);

    // Two snapshots: the first restores a symlink `d`, the second a directory `d` into the same
    // target; restore must not descend through the link it made before.
    let first = craft(&repo, |w| root(w, vec![symlink(b"d", &victim)]));
    let second = craft(&repo, |w| {
        let inner = vec![file(w, b"planted", b"planted")?];
        root(w, vec![dir(w, b"d", inner)?])
    });
    let target = scene.target(false);
    repo.restore(&first, &target, &[]).assert_ok();
    let out = repo.restore(&second, &target, &[]);
    assert_eq!(out.code, 1, "{}", out.describe());
    scene.assert_contained("a directory over a restored symlink");
}

#[test]
fn file_sizes_that_disagree_with_their_content_are_not_believed() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    for (claim, what) in [
        (1u64 << 62, "a file claiming 2^62 bytes over 4"),
        (u64::MAX, "a file claiming 2^64-1 bytes"),
        (2, "a file claiming 2 bytes over 4"),
    ] {
        let id = craft(&repo, |w| {
            let mut big = file(w, b"big", b"tiny")?;
            big.size = claim;
            let mut twin = file(w, b"twin", b"tiny")?;
            twin.size = claim;
            root(w, vec![big, twin, file(w, b"honest", b"honest")?])
        });
        for out in restore_refused(&repo, &scene, &id, what) {
            assert!(
                out.stderr.contains("big"),
                "{what}: the file is not named:\n{}",
                out.describe()
            );
        }
        let target = scene.base.path().join("target");
        let size = fs::symlink_metadata(target.join("big"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            size <= 4,
            "{what}: restored a {size}-byte file from 4 bytes of content"
        );
        assert_eq!(
            fs::read(target.join("honest")).unwrap(),
            b"honest",
            "{what}"
        );
        check_reports(&repo, what, "big");
        forget_all(&repo);
    }
}

/// Deeper than any file system path: a chain of 100,000 directories (quick: 20,000).
#[test]
fn nesting_deeper_than_any_path_is_refused_without_crashing() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let depth = scale(20_000, 100_000);
    let id = craft(&repo, |w| {
        let mut nodes = vec![file(w, b"bottom", b"bottom")?];
        for _ in 0..depth {
            nodes = vec![dir(w, b"d", nodes)?];
        }
        root(w, nodes)
    });
    // Restoring everything runs into the file system's path limit first...
    restore_refused(&repo, &scene, &id, "100,000-deep nesting");
    // ...restoring nothing of it walks the trees without making directories: the depth limit.
    let out = repo.restore(&id, &scene.target(false), &["--include", "/no/such/path"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(out.stderr.contains("nest more than"), "{}", out.describe());
    scene.assert_contained("100,000-deep nesting, nothing included");
    check_reports(&repo, "100,000-deep nesting", "deep");
    let out = repo.run(&["ls", &id, "--json"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    // Nothing is unused: prune walks the whole chain (its own stack) and keeps it; a copy into
    // a repository of another key re-encrypts all of it.
    repo.run(&["prune"]).assert_ok();
    let other = Repo::init(&[]);
    let copied = repo.json(&["copy", "--to", &other.path.display().to_string(), "--json"]);
    assert_eq!(copied["mode"], "re-encrypted", "{copied}");
    eprintln!("nesting: {depth} levels refused");
}

/// Index entries are written by hosts holding the key too: one blob claimed to sit inside
/// another, or at the same offset, must neither crash restore nor give one file another's data.
#[test]
fn overlapping_index_entries_neither_crash_nor_mix_contents() {
    use bulwark_repo::index::IndexFile;
    for same_offset in [false, true] {
        let repo = Repo::init(&[]);
        let scene = Scene::new();
        let (a, b) = (Prng::new(1).bytes(5000), Prng::new(2).bytes(3000));
        let id = craft(&repo, |w| {
            root(w, vec![file(w, b"a", &a)?, file(w, b"b", &b)?])
        });
        let lib = repo.open_lib();
        let names = lib.list_index_files().unwrap();
        let mut packs = Vec::new();
        for name in &names {
            packs.extend(lib.read_index_file(name).unwrap().packs);
        }
        let (a_id, b_id) = (lib.key().blob_id(&a), lib.key().blob_id(&b));
        let pack = packs
            .iter_mut()
            .find(|p| p.blobs.iter().any(|x| x.id == a_id))
            .unwrap();
        let a_entry = *pack.blobs.iter().find(|x| x.id == a_id).unwrap();
        let b_entry = pack.blobs.iter_mut().find(|x| x.id == b_id).unwrap();
        if same_offset {
            (b_entry.offset, b_entry.stored_len) = (a_entry.offset, a_entry.stored_len);
        } else {
            (b_entry.offset, b_entry.stored_len) = (a_entry.offset + 16, 10);
        }
        lib.save_index(&IndexFile {
            packs,
            supersedes: vec![],
        })
        .unwrap();
        for name in &names {
            fs::remove_file(repo.path.join("index").join(name)).unwrap();
        }
        let target = scene.target(false);
        let out = repo.restore(&id, &target, &[]);
        assert_eq!(
            out.code,
            1,
            "same offset: {same_offset}\n{}",
            out.describe()
        );
        assert_ne!(
            fs::read(target.join("b")).ok(),
            Some(a.clone()),
            "b got a's content"
        );
        scene.assert_contained("overlapping index entries");
    }
}

/// A tree that contains itself needs a blob stored under an id that is not its hash: loading
/// it fails authentication of the id, so neither restore nor check can loop.
#[test]
fn a_tree_that_contains_itself_is_refused() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let id = craft(&repo, |w| {
        let me = Id([0x42; 32]);
        let mut node = Node::new(OsStr::new("again"), NodeKind::Dir);
        (node.mode, node.subtree) = (0o755, Some(me));
        w.save_with_id(BlobKind::Tree, me, &Tree { nodes: vec![node] }.to_bytes())?;
        Ok(me)
    });
    restore_refused(&repo, &scene, &id, "a tree containing itself");
    check_reports(&repo, "a tree containing itself", "does not match");
    let out = repo.run(&["ls", &id, "--json"]);
    assert_eq!(out.code, 1, "{}", out.describe());
}

#[test]
fn a_directory_of_100k_entries_restores() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let n = scale(20_000, 100_000) as usize;
    let id = craft(&repo, |w| {
        let nodes = (0..n)
            .map(|i| file(w, format!("f{i:06}").as_bytes(), b""))
            .collect::<bulwark_repo::Result<Vec<_>>>()?;
        root(w, nodes)
    });
    let target = scene.target(false);
    let out = repo.restore(&id, &target, &[]);
    out.assert_ok();
    assert_eq!(u64_of(&out.json(), "files"), n as u64);
    assert_eq!(fs::read_dir(&target).unwrap().count(), n);
    scene.assert_contained("a directory of 100k entries");
    let (out, _) = repo.check(&[]);
    out.assert_ok();
    forget_all(&repo);

    // The same count, every entry with one name: refused before anything is written.
    let id = craft(&repo, |w| {
        let nodes = (0..n)
            .map(|_| file(w, b"same", b""))
            .collect::<bulwark_repo::Result<Vec<_>>>()?;
        root(w, nodes)
    });
    restore_refused(&repo, &scene, &id, "100k entries of one name");
    check_reports(&repo, "100k entries of one name", "appears twice");
}

/// The re-encrypting copy walks trees on its own stack: shared subtrees (honest deduplication)
/// and nesting must come out exactly as they went in.
#[test]
fn a_reencrypting_copy_of_shared_and_nested_trees_restores_exactly() {
    let repo = Repo::init(&[]);
    let scene = Scene::new();
    let id = craft(&repo, |w| {
        let shared = vec![file(w, b"same", b"shared content")?];
        let deep = dir(w, b"c", vec![dir(w, b"b", vec![file(w, b"a", b"deep")?])?])?;
        root(
            w,
            vec![
                dir(w, b"one", shared.clone())?,
                dir(w, b"two", shared)?,
                deep,
                file(w, b"top", b"top")?,
            ],
        )
    });
    let other = Repo::init(&[]);
    let copied = repo.json(&["copy", "--to", &other.path.display().to_string(), "--json"]);
    assert_eq!(copied["mode"], "re-encrypted", "{copied}");
    let theirs = other.snapshots();
    assert_eq!(theirs.len(), 1);
    let mine = scene.target(false);
    repo.restore(&id, &mine, &[]).assert_ok();
    let copy_target = scene.base.path().join("copy-target");
    other
        .restore(&id_of(&theirs[0]), &copy_target, &[])
        .assert_ok();
    for rel in ["one/same", "two/same", "c/b/a", "top"] {
        assert_eq!(
            fs::read(mine.join(rel)).unwrap(),
            fs::read(copy_target.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(fs::read(copy_target.join("c/b/a")).unwrap(), b"deep");
    other.assert_clean();
}
