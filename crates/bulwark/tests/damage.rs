//! Damage, each case in a fresh repository: wrong credentials, a missing repository, truncated,
//! bit-flipped and missing packs, a bit-flipped index file (and `repair index`), a bit-flipped
//! snapshot, a damaged config and key slot. Each must fail with the documented exit code and a
//! clear message, name what is damaged, and never panic (every command run here asserts that).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use bulwark_repo::pack::PackedBlob;
use common::*;
use serde_json::Value;

/// Large chunks (1-16 MiB) in 1 MiB packs: nearly every data pack holds a single blob, so cutting
/// its last 100 bytes cuts into blob data, not just the pack's directory.
const BIG_BLOBS: &[&str] = &["--chunk-avg-kib", "4096", "--pack-size-mib", "1"];

struct Fixture {
    repo: Repo,
    _work: tempfile::TempDir,
    src: PathBuf,
    snap: String,
}

impl Fixture {
    fn new(init: &[&str]) -> Fixture {
        let work = tempdir("bulwark-damage-");
        let src = work.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        let mut rng = Prng::new(0xDA3A6E);
        fs::write(src.join("a.bin"), rng.bytes(3 << 20)).unwrap();
        fs::write(src.join("sub/b.bin"), rng.bytes(5 << 19)).unwrap();
        fs::write(src.join("sub/c.txt"), rng.text(1 << 20)).unwrap();
        fs::write(src.join("d.txt"), b"small and alone").unwrap();
        let repo = Repo::init(init);
        let snap = id_of(&repo.backup(&[&src], &[]));
        Fixture {
            repo,
            _work: work,
            src,
            snap,
        }
    }

    fn short(&self) -> &str {
        &self.snap[..8]
    }

    /// For each pack: the (snapshot path, blob) pairs of the file contents it holds.
    fn pack_contents(&self) -> BTreeMap<String, Vec<(PathBuf, PackedBlob)>> {
        let lib = self.repo.open_lib();
        let index = lib.load_index().unwrap();
        let (_, snap) = lib.find_snapshot(&self.snap, |_| true).unwrap();
        let tree = lib.load_tree(&index, &snap.tree).unwrap();
        let mut out: BTreeMap<String, Vec<(PathBuf, PackedBlob)>> = BTreeMap::new();
        bulwark_ops::browse::walk(&lib, &index, &tree, Path::new("/"), &mut |path, node| {
            for blob in &node.content {
                let loc = index.lookup(blob).expect("indexed");
                out.entry(loc.pack.id.to_hex())
                    .or_default()
                    .push((path.to_path_buf(), loc.blob));
            }
            Ok(())
        })
        .unwrap();
        out
    }

    /// `shortid:/path` of every file with a blob in `pack`, as `check` lists them in `affected`.
    fn affected_by(
        &self,
        contents: &BTreeMap<String, Vec<(PathBuf, PackedBlob)>>,
        pack: &str,
    ) -> BTreeSet<String> {
        contents[pack]
            .iter()
            .map(|(p, _)| format!("{}:{}", self.short(), p.display()))
            .collect()
    }

    /// Restore one file of the snapshot (`ID:/abs/path`) into a fresh directory.
    fn restore_file(&self, file: &Path) -> (Out, tempfile::TempDir) {
        let target = tempdir("bulwark-damage-restore-");
        let out = self.repo.restore(
            &format!("{}:{}", self.short(), file.display()),
            target.path(),
            &["--verify"],
        );
        (out, target)
    }

    #[track_caller]
    fn assert_restores_intact(&self, file: &Path) {
        let (out, target) = self.restore_file(file);
        out.assert_ok();
        let restored = target.path().join(file.file_name().unwrap());
        assert_eq!(
            fs::read(&restored).unwrap(),
            fs::read(file).unwrap(),
            "{}",
            file.display()
        );
    }
}

fn set_of(v: &Value) -> BTreeSet<String> {
    strings(v).into_iter().collect()
}

#[track_caller]
fn assert_mentions(report: &Value, field: &str, needle: &str) {
    assert!(
        strings(&report[field]).iter().any(|e| e.contains(needle)),
        "{field} should mention {needle}: {report}"
    );
}

#[test]
fn wrong_credentials_exit_12_with_one_error_line() {
    let f = Fixture::new(&[]);
    let packs = f.repo.objects("data").len();
    let wrong = |args: &[&str]| {
        let out = run(f
            .repo
            .cmd(args)
            .env("BULWARK_PASSWORD", "not the passphrase"));
        out.assert_code(12).assert_one_error_line();
        assert!(out.stderr.contains("passphrase"), "{}", out.describe());
    };
    wrong(&["snapshots"]);
    wrong(&["check"]);
    wrong(&["restore", "latest", "--target", "/nonexistent-target"]);
    wrong(&["backup", f.src.to_str().unwrap()]);
    // Nothing was written by the refused backup.
    assert_eq!(f.repo.objects("data").len(), packs);
    assert_eq!(f.repo.snapshots().len(), 1);

    // The same through a password file.
    let dir = tempdir("bulwark-cred-");
    let pw = dir.path().join("pw");
    fs::write(&pw, "also wrong\n").unwrap();
    let out = run(bulwark()
        .arg("-r")
        .arg(&f.repo.path)
        .arg("--password-file")
        .arg(&pw)
        .arg("snapshots"));
    out.assert_code(12).assert_one_error_line();

    // A key file of another repository, and a key file that is not one.
    let other = tempdir("bulwark-other-");
    let key = other.path().join("key");
    run(bulwark()
        .arg("-r")
        .arg(other.path().join("repo"))
        .arg("init")
        .arg("--new-key-file")
        .arg(&key))
    .assert_ok();
    let out = run(bulwark()
        .arg("-r")
        .arg(&f.repo.path)
        .arg("--key-file")
        .arg(&key)
        .arg("snapshots"));
    out.assert_code(12).assert_one_error_line();
    let junk = dir.path().join("junk");
    fs::write(&junk, "definitely not a key\n").unwrap();
    let out = run(bulwark()
        .arg("-r")
        .arg(&f.repo.path)
        .env("BULWARK_KEY_FILE", &junk)
        .arg("snapshots"));
    out.assert_code(12).assert_one_error_line();
}

#[test]
fn a_missing_repository_exits_10() {
    let dir = tempdir("bulwark-missing-");
    let missing = dir.path().join("nothing-here");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for repo in [&missing, &empty] {
        for args in [
            &["snapshots"][..],
            &["check", "--read-data"],
            &["restore", "latest", "--target", "/tmp/x"],
            &["backup", "/etc/hostname"],
        ] {
            let out = run(bulwark()
                .arg("-r")
                .arg(repo)
                .env("BULWARK_PASSWORD", PASSWORD)
                .args(args));
            out.assert_code(10).assert_one_error_line();
            assert!(out.stderr.contains("no repository"), "{}", out.describe());
        }
    }
    // Nothing was created by looking.
    assert!(!missing.exists());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    // No repository named at all is a usage error.
    run(bulwark().env("BULWARK_PASSWORD", PASSWORD).arg("snapshots")).assert_code(2);
}

#[test]
fn a_truncated_pack_is_named_and_its_files_fail_to_restore() {
    let f = Fixture::new(BIG_BLOBS);
    let contents = f.pack_contents();
    let sizes = f.repo.objects("data");
    // A data pack whose last 100 bytes hold blob data.
    let (pack, cut) = contents
        .iter()
        .find_map(|(pack, blobs)| {
            let size = sizes[pack];
            let cut: Vec<&PathBuf> = blobs
                .iter()
                .filter(|(_, b)| (b.offset + b.stored_len) as u64 > size - 100)
                .map(|(p, _)| p)
                .collect();
            (!cut.is_empty()).then(|| (pack.clone(), cut[0].clone()))
        })
        .expect("a pack whose tail holds blob data");
    let affected = f.affected_by(&contents, &pack);
    let path = f.repo.pack_path(&pack);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(sizes[&pack] - 100).unwrap();
    drop(file);

    for extra in [&[][..], &["--read-data"]] {
        let (out, report) = f.repo.check(extra);
        out.assert_code(1);
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(
            set_of(&report["damaged_packs"]),
            BTreeSet::from([pack.clone()]),
            "{report}"
        );
        assert_mentions(&report, "errors", &pack);
        assert_eq!(set_of(&report["affected"]), affected, "{report}");
    }

    let (out, _t) = f.restore_file(&cut);
    out.assert_code(1);
    assert!(out.stderr.contains("error:"), "{}", out.describe());
    // Files outside the damaged pack still restore.
    for p in [
        f.src.join("a.bin"),
        f.src.join("sub/b.bin"),
        f.src.join("sub/c.txt"),
        f.src.join("d.txt"),
    ] {
        if !affected.contains(&format!("{}:{}", f.short(), p.display())) {
            f.assert_restores_intact(&p);
        }
    }
}

#[test]
fn a_flipped_byte_in_a_pack_is_found_by_reading_the_data() {
    let f = Fixture::new(BIG_BLOBS);
    let contents = f.pack_contents();
    let sizes = f.repo.objects("data");
    // The pack holding a.bin's first blob, damaged in its middle.
    let a = f.src.join("a.bin");
    let (pack, blobs) = contents
        .iter()
        .find(|(_, blobs)| blobs.iter().any(|(p, _)| *p == a))
        .unwrap();
    let middle = sizes[pack] / 2;
    let hit = blobs
        .iter()
        .find(|(_, b)| (b.offset as u64..(b.offset + b.stored_len) as u64).contains(&middle))
        .map(|(p, _)| p.clone())
        .expect("the middle of a pack lies inside a blob");
    let affected = f.affected_by(&contents, pack);
    flip_byte(&f.repo.pack_path(pack), middle);

    // Without reading data the pack looks fine (same name, same size): no claim either way.
    let (out, _) = f.repo.check(&[]);
    assert!(out.code == 0 || out.code == 1, "{}", out.describe());

    for extra in [&["--read-data"][..], &["--read-data-subset", "100%"]] {
        let (out, report) = f.repo.check(extra);
        out.assert_code(1);
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(
            set_of(&report["damaged_packs"]),
            BTreeSet::from([pack.clone()]),
            "{report}"
        );
        assert_mentions(&report, "errors", pack);
        assert_eq!(set_of(&report["affected"]), affected, "{report}");
        assert!(affected.contains(&format!("{}:{}", f.short(), hit.display())));
    }

    let (out, _t) = f.restore_file(&hit);
    out.assert_code(1);
    let target = tempdir("bulwark-damage-all-");
    f.repo.restore(&f.snap, target.path(), &[]).assert_code(1);
    for p in [
        f.src.join("sub/b.bin"),
        f.src.join("sub/c.txt"),
        f.src.join("d.txt"),
    ] {
        if !affected.contains(&format!("{}:{}", f.short(), p.display())) {
            f.assert_restores_intact(&p);
        }
    }
}

#[test]
fn a_flipped_byte_in_the_tree_pack_makes_the_whole_snapshot_affected() {
    let f = Fixture::new(BIG_BLOBS);
    let lib = f.repo.open_lib();
    let index = lib.load_index().unwrap();
    let tree_packs: BTreeSet<String> = index
        .blobs()
        .filter(|b| b.blob.kind == bulwark_repo::BlobKind::Tree)
        .map(|b| b.pack.id.to_hex())
        .collect();
    assert_eq!(tree_packs.len(), 1, "one small backup writes one tree pack");
    let pack = tree_packs.into_iter().next().unwrap();
    let size = f.repo.objects("data")[&pack];
    flip_byte(&f.repo.pack_path(&pack), size / 2);

    let (out, report) = f.repo.check(&["--read-data"]);
    out.assert_code(1);
    assert_eq!(
        set_of(&report["damaged_packs"]),
        BTreeSet::from([pack.clone()]),
        "{report}"
    );
    assert_mentions(&report, "errors", &pack);
    // The root tree is in the damaged pack: everything below it is out of reach.
    assert_eq!(
        set_of(&report["affected"]),
        BTreeSet::from([format!("{}:/", f.short())]),
        "{report}"
    );
    let target = tempdir("bulwark-tree-damage-");
    f.repo.restore(&f.snap, target.path(), &[]).assert_code(1);
}

#[test]
fn a_missing_pack_is_named() {
    let f = Fixture::new(BIG_BLOBS);
    let contents = f.pack_contents();
    let a = f.src.join("a.bin");
    let pack = contents
        .iter()
        .find(|(_, b)| b.iter().any(|(p, _)| *p == a))
        .unwrap()
        .0
        .clone();
    let affected = f.affected_by(&contents, &pack);
    fs::remove_file(f.repo.pack_path(&pack)).unwrap();
    let (out, report) = f.repo.check(&[]);
    out.assert_code(1);
    assert_eq!(
        set_of(&report["damaged_packs"]),
        BTreeSet::from([pack.clone()]),
        "{report}"
    );
    assert_mentions(&report, "errors", &pack);
    assert_eq!(set_of(&report["affected"]), affected, "{report}");
    f.restore_file(&a).0.assert_code(1);
}

#[test]
fn a_flipped_byte_in_an_index_file_fails_clearly_until_repaired() {
    let f = Fixture::new(&["--pack-size-mib", "1"]);
    let index = f.repo.objects("index");
    assert_eq!(index.len(), 1, "{index:?}");
    let (name, size) = index.iter().next().unwrap();
    flip_byte(&f.repo.path.join("index").join(name), size / 2);

    let target = tempdir("bulwark-index-restore-");
    let restore_target = target.path().join("t");
    for args in [
        vec![
            "restore",
            "latest",
            "--target",
            restore_target.to_str().unwrap(),
        ],
        vec!["ls", "latest"],
        vec!["backup", f.src.to_str().unwrap()],
    ] {
        let out = f.repo.run(&args);
        out.assert_code(1).assert_one_error_line();
        assert!(
            out.stderr.contains(&format!("index/{name}")),
            "{args:?} should name the index file:\n{}",
            out.describe()
        );
    }
    assert_eq!(
        f.repo.snapshots().len(),
        1,
        "the failed backup saved nothing"
    );
    let (out, report) = f.repo.check(&[]);
    out.assert_code(1);
    assert_mentions(&report, "errors", name);

    let repaired = f.repo.json(&["repair", "index", "--json"]);
    assert_eq!(
        repaired["unreadable_packs"],
        serde_json::json!([]),
        "{repaired}"
    );
    assert!(
        !f.repo.path.join("index").join(name).exists(),
        "the damaged index file is retired"
    );
    f.repo.assert_clean();
    let (_, report) = f.repo.check(&[]);
    assert_eq!(
        report["warnings"],
        serde_json::json!([]),
        "every pack is indexed again: {report}"
    );
    let target = tempdir("bulwark-index-restore-");
    f.repo
        .restore(&f.snap, target.path(), &["--verify"])
        .assert_ok();
    assert_same_tree(&f.src, &restored_at(target.path(), &f.src), Compare::ALL);
    // And backups work again, finding everything already stored.
    let again = f.repo.backup(&[&f.src], &[]);
    assert_eq!(u64_of(&again, "files_unmodified"), 4, "{again}");
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_reported() {
    let f = Fixture::new(&[]);
    let second = id_of(&f.repo.backup(&[&f.src], &["--tag", "second"]));
    flip_byte(&f.repo.path.join("snapshots").join(&f.snap), 40);

    let out = f.repo.run(&["snapshots", "--json"]);
    out.assert_ok();
    let listed: Vec<String> = out.json().as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(listed, vec![second.clone()]);
    assert!(out.stderr.contains("warning"), "{}", out.describe());
    assert!(
        out.stderr.contains(f.short()),
        "the warning names the snapshot:\n{}",
        out.describe()
    );

    let (out, report) = f.repo.check(&[]);
    out.assert_code(1);
    assert_mentions(&report, "errors", f.short());
    let target = tempdir("bulwark-snap-restore-");
    f.repo
        .restore(f.short(), &target.path().join("bad"), &[])
        .assert_code(1);
    f.repo
        .restore(&second, &target.path().join("good"), &["--verify"])
        .assert_ok();
    assert_same_tree(
        &f.src,
        &restored_at(&target.path().join("good"), &f.src),
        Compare::ALL,
    );
}

#[test]
fn a_damaged_config_or_key_slot_fails_without_panicking() {
    let f = Fixture::new(&[]);
    let keys = f.repo.objects("keys");
    let slot = f.repo.path.join("keys").join(keys.keys().next().unwrap());
    let original = fs::read(&slot).unwrap();
    fs::write(&slot, b"{ not json").unwrap();
    let out = f.repo.run(&["snapshots"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    fs::write(&slot, &original).unwrap();
    f.repo.run(&["snapshots"]).assert_ok();

    let config = f.repo.path.join("config");
    let original = fs::read(&config).unwrap();
    fs::write(&config, b"garbage").unwrap();
    let out = f.repo.run(&["snapshots"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("config"), "{}", out.describe());
    fs::write(&config, &original[..original.len() / 2]).unwrap();
    f.repo.run(&["snapshots"]).assert_code(1);
}

/// Store a snapshot whose root tree holds one file called `name`, written through the library
/// (as a tampering party holding the key could): restore must refuse names that are not one
/// plain path component, and write nothing outside the target.
fn snapshot_with_name(repo: &Repo, name: &[u8]) -> String {
    use bulwark_repo::writer::BlobWriter;
    use bulwark_repo::{BlobKind, Node, NodeKind, Tree};
    use std::os::unix::ffi::OsStrExt;
    let lib = repo.open_lib();
    let index = lib.load_index().unwrap();
    let (root, _) = BlobWriter::run(&lib, &index, 1, |w| {
        let data = w.save(BlobKind::Data, b"escaped")?;
        let mut node = Node::new(std::ffi::OsStr::from_bytes(name), NodeKind::File);
        node.mode = 0o644;
        node.size = 7;
        node.content = vec![data];
        w.save(BlobKind::Tree, &Tree { nodes: vec![node] }.to_bytes())
    })
    .unwrap();
    let snapshot: bulwark_repo::Snapshot = serde_json::from_value(serde_json::json!({
        "time": "2024-01-01T00:00:00Z",
        "tree": root,
        "paths": ["/crafted"],
        "hostname": "crafted",
        "username": "crafted",
        "program_version": "crafted",
    }))
    .unwrap();
    lib.save_snapshot(&snapshot).unwrap().to_hex()
}

#[test]
fn crafted_snapshots_with_unsafe_names_are_refused() {
    let repo = Repo::init(&[]);
    let outside = tempdir("bulwark-unsafe-");
    for name in [
        &b".."[..],
        b".",
        b"a/../../escape",
        b"/abs",
        b"nul\0byte",
        b"",
    ] {
        let id = snapshot_with_name(&repo, name);
        let target = outside.path().join("target");
        let out = repo.restore(&id, &target, &[]);
        out.assert_code(1).assert_one_error_line();
        let stray: Vec<PathBuf> = files_below(outside.path());
        assert!(stray.is_empty(), "restoring {name:?} wrote {stray:?}");
        let _ = fs::remove_dir_all(&target);
    }
    // check walks such trees without panicking.
    let (out, _) = repo.check(&["--read-data"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.describe());
}

/// A crafted tree holding a symlink and a directory of the same name: restoring the directory
/// must not follow the symlink and write outside the target.
#[test]
fn crafted_duplicate_names_cannot_redirect_a_restore_through_a_symlink() {
    use bulwark_repo::writer::BlobWriter;
    use bulwark_repo::{BlobKind, Node, NodeKind, Tree};
    let repo = Repo::init(&[]);
    let outside = tempdir("bulwark-dup-names-");
    let victim = outside.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let lib = repo.open_lib();
    let index = lib.load_index().unwrap();
    let (root, _) = BlobWriter::run(&lib, &index, 1, |w| {
        let data = w.save(BlobKind::Data, b"planted")?;
        let mut file = Node::new("planted".as_ref(), NodeKind::File);
        (file.mode, file.size, file.content) = (0o644, 7, vec![data]);
        let inner = w.save(BlobKind::Tree, &Tree { nodes: vec![file] }.to_bytes())?;
        let mut link = Node::new("d".as_ref(), NodeKind::Symlink);
        link.mode = 0o777;
        link.set_link_target(victim.as_os_str());
        let mut dir = Node::new("d".as_ref(), NodeKind::Dir);
        dir.mode = 0o755;
        dir.subtree = Some(inner);
        w.save(
            BlobKind::Tree,
            &Tree {
                nodes: vec![link, dir],
            }
            .to_bytes(),
        )
    })
    .unwrap();
    let snapshot: bulwark_repo::Snapshot = serde_json::from_value(serde_json::json!({
        "time": "2024-01-01T00:00:00Z", "tree": root, "paths": ["/d"], "hostname": "crafted",
        "username": "crafted", "program_version": "crafted",
    }))
    .unwrap();
    let id = lib.save_snapshot(&snapshot).unwrap().to_hex();
    let target = outside.path().join("target");
    let out = repo.restore(&id, &target, &[]);
    assert!(out.code == 0 || out.code == 1, "{}", out.describe());
    let planted: Vec<PathBuf> = files_below(&victim);
    assert!(
        planted.is_empty(),
        "restore wrote outside its target through a symlink: {planted:?}"
    );
}
