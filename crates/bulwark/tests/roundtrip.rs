//! Property-based round trips: random trees (unicode and non-UTF-8 names, empty, multi-chunk,
//! sparse and duplicate files, deep directories, dangling and live symlinks, fifos, hard links,
//! special permission bits, nanosecond mtimes, arbitrary owners when root) are backed up,
//! restored with --verify, and compared byte for byte and field for field with the source. A
//! second backup after a few modifications must classify files correctly and restore exactly.
//!
//! Cases: 16 by default, 200 with BULWARK_THOROUGH=1 (PROPTEST_RNG_SEED replays a run).
//!
//! FIFOs have a test of their own rather than a place in the random trees: a restore that hangs on
//! one would cost a full watchdog timeout for every shrinking step.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::ffi::{CString, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Pieces file names are made of: ASCII, punctuation that shells and globs care about, accents,
/// combining marks, CJK, emoji, right-to-left script, zero-width space, and even a newline.
const NAME_PIECES: &[&str] = &[
    "a", "b", "Z", "0", "9", "_", "-", " ", ".", ",", "'", "\"", "\\", "*", "?", "[", "]", ":",
    "#", "%", "~", "é", "ß", "Ω", "Ж", "日", "本", "語", "ا", "ñ", "\u{301}", "\u{200b}", "🦀",
    "🎉", "\n",
];

const FILE_MODES: &[u32] = &[
    0o644, 0o600, 0o755, 0o4755, 0o2755, 0o6750, 0o400, 0o444, 0o640, 0o700,
];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o750, 0o775, 0o2775, 0o1777, 0o711];

fn name() -> impl Strategy<Value = OsString> {
    prop_oneof![
        8 => vec(prop::sample::select(NAME_PIECES), 1..10).prop_map(|v| OsString::from(v.concat())),
        // Not UTF-8: stored as raw bytes beside a lossy display form.
        1 => vec(prop_oneof![0x80u8..=0xff, b'a'..=b'z'], 1..10).prop_map(OsString::from_vec),
    ]
    .prop_filter("not . or ..", |n| n != "." && n != "..")
}

#[derive(Clone, Debug)]
enum Content {
    Empty,
    Small(Vec<u8>),
    Random {
        seed: u64,
        len: usize,
    },
    Text {
        seed: u64,
        len: usize,
    },
    /// A hole-y file: (offset fraction, length, seed) islands of data.
    Sparse {
        len: u64,
        islands: Vec<(u64, usize, u64)>,
    },
    /// The same bytes as an earlier file (deduplication).
    CopyOf(usize),
}

#[derive(Clone, Debug)]
enum Link {
    Raw(OsString),
    /// Some entry of the same directory (alive), if there is one.
    Sibling(usize),
}

#[derive(Clone, Debug)]
enum What {
    File(Content),
    Dir,
    Symlink(Link),
    Hardlink(usize),
}

type Time = (i64, u32);

#[derive(Clone, Debug)]
struct Spec {
    parent: usize,
    name: OsString,
    what: What,
    mode: usize,
    mtime: Time,
    owner: (u32, u32),
}

#[derive(Clone, Debug)]
enum Change {
    Append(Vec<u8>, Time),
    /// Same size, new bytes, and the old mtime put back: only ctime tells.
    RewriteKeepMtime(u64),
    Touch(Time),
}

#[derive(Clone, Debug)]
struct Case {
    chain: Vec<OsString>,
    big: (u64, usize),
    fixed_seed: u64,
    fixed_time: Time,
    entries: Vec<Spec>,
    changes: Vec<(usize, Change)>,
}

fn time() -> impl Strategy<Value = Time> {
    // From 1906 to 2223, with nanoseconds.
    (-2_000_000_000i64..8_000_000_000, 0u32..1_000_000_000)
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        2 => Just(Content::Empty),
        4 => vec(any::<u8>(), 1..3000).prop_map(Content::Small),
        2 => (any::<u64>(), 1usize..300_000).prop_map(|(seed, len)| Content::Random { seed, len }),
        2 => (any::<u64>(), 1usize..300_000).prop_map(|(seed, len)| Content::Text { seed, len }),
        1 => (1u64..(6 << 20), vec((any::<u64>(), 1usize..70_000, any::<u64>()), 0..4))
            .prop_map(|(len, islands)| Content::Sparse { len, islands }),
        1 => any::<usize>().prop_map(Content::CopyOf),
    ]
}

fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        8 => content().prop_map(What::File),
        4 => Just(What::Dir),
        1 => vec(name(), 1..4).prop_map(|parts| {
            let mut t = OsString::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    t.push("/");
                }
                t.push(p);
            }
            What::Symlink(Link::Raw(t))
        }),
        1 => any::<usize>().prop_map(|i| What::Symlink(Link::Sibling(i))),
        1 => any::<usize>().prop_map(What::Hardlink),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<usize>(),
        name(),
        what(),
        any::<usize>(),
        time(),
        (0u32..200_000, 0u32..200_000),
    )
        .prop_map(|(parent, name, what, mode, mtime, owner)| Spec {
            parent,
            name,
            what,
            mode,
            mtime,
            owner,
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (vec(any::<u8>(), 1..5000), time()).prop_map(|(b, t)| Change::Append(b, t)),
        any::<u64>().prop_map(Change::RewriteKeepMtime),
        time().prop_map(Change::Touch),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        vec(name(), 10..14),
        (any::<u64>(), (1usize << 20)..(2 << 20)),
        any::<u64>(),
        time(),
        vec(spec(), 0..40),
        vec((any::<usize>(), change()), 1..5),
    )
        .prop_map(
            |(chain, big, fixed_seed, fixed_time, entries, changes)| Case {
                chain,
                big,
                fixed_seed,
                fixed_time,
                entries,
                changes,
            },
        )
}

/// What was built: the regular file paths (hard links included) and the metadata to apply.
struct Built {
    files: Vec<PathBuf>,
    meta: Vec<(PathBuf, Meta)>,
    dirs: Vec<(PathBuf, Meta)>,
}

#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    mtime: Time,
    owner: (u32, u32),
    symlink: bool,
}

/// A name not yet used in `dir`.
fn free_path(dir: &Path, name: &OsString) -> PathBuf {
    let mut name = name.clone();
    loop {
        let p = dir.join(&name);
        if fs::symlink_metadata(&p).is_err() {
            return p;
        }
        name.push("~");
    }
}

fn write_content(path: &Path, content: &Content, files: &[PathBuf]) {
    match content {
        Content::Empty => fs::write(path, b"").unwrap(),
        Content::Small(b) => fs::write(path, b).unwrap(),
        Content::Random { seed, len } => fs::write(path, Prng::new(*seed).bytes(*len)).unwrap(),
        Content::Text { seed, len } => fs::write(path, Prng::new(*seed).text(*len)).unwrap(),
        Content::Sparse { len, islands } => {
            let f = fs::File::create(path).unwrap();
            f.set_len(*len).unwrap();
            for (at, n, seed) in islands {
                let at = at % len;
                let n = (*n as u64).min(len - at) as usize;
                f.write_all_at(&Prng::new(*seed).bytes(n), at).unwrap();
            }
        }
        Content::CopyOf(i) => match files.get(i % files.len().max(1)) {
            Some(src) => {
                fs::write(path, fs::read(src).unwrap()).unwrap();
            }
            None => fs::write(path, b"no file to copy yet").unwrap(),
        },
    }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn apply(path: &Path, m: Meta, as_root: bool) {
    if as_root {
        std::os::unix::fs::lchown(path, Some(m.owner.0), Some(m.owner.1)).unwrap();
    }
    if !m.symlink {
        // After chown, which clears set-id bits.
        fs::set_permissions(path, fs::Permissions::from_mode(m.mode)).unwrap();
    }
    set_times(path, (1_500_000_000, 0), m.mtime);
}

fn build(root: &Path, case: &Case, as_root: bool) -> Built {
    let mut rng = Prng::new(case.fixed_seed);
    let mut built = Built {
        files: Vec::new(),
        meta: Vec::new(),
        dirs: Vec::new(),
    };
    let file_modes: Vec<u32> = if as_root {
        // Root reads anything: a mode-000 file still backs up.
        FILE_MODES.iter().copied().chain([0o000, 0o7777]).collect()
    } else {
        FILE_MODES.to_vec()
    };
    let owner = |rng: &mut Prng| (rng.below(200_000) as u32, rng.below(200_000) as u32);
    fs::create_dir(root).unwrap();
    let mut dirs = vec![root.to_path_buf()];
    let mut dir_meta = vec![Meta {
        mode: 0o755,
        mtime: case.fixed_time,
        owner: owner(&mut rng),
        symlink: false,
    }];

    // A deep chain, with the multi-chunk file at its bottom.
    for (i, n) in case.chain.iter().enumerate() {
        let p = free_path(dirs.last().unwrap(), n);
        fs::create_dir(&p).unwrap();
        dirs.push(p);
        dir_meta.push(Meta {
            mode: DIR_MODES[i % DIR_MODES.len()],
            mtime: (
                case.fixed_time.0 + i as i64,
                (case.fixed_time.1 + i as u32) % 1_000_000_000,
            ),
            owner: owner(&mut rng),
            symlink: false,
        });
    }
    let big = dirs.last().unwrap().join("big 🦀.bin");
    fs::write(&big, Prng::new(case.big.0).bytes(case.big.1)).unwrap();
    built.files.push(big.clone());
    built.meta.push((
        big.clone(),
        Meta {
            mode: 0o644,
            mtime: case.fixed_time,
            owner: owner(&mut rng),
            symlink: false,
        },
    ));

    // Every case has one of each special thing, whatever else it draws.
    let fixed = root.join("fixed");
    fs::create_dir(&fixed).unwrap();
    dirs.push(fixed.clone());
    dir_meta.push(Meta {
        mode: 0o750,
        mtime: (case.fixed_time.0 - 1, 1),
        owner: owner(&mut rng),
        symlink: false,
    });
    let t = |k: i64| {
        (
            case.fixed_time.0 + 1000 * k,
            (case.fixed_time.1 + 7 * k as u32) % 1_000_000_000,
        )
    };
    let empty = fixed.join("empty");
    fs::write(&empty, b"").unwrap();
    let setuid = fixed.join("setuid-tool");
    fs::write(&setuid, rng.bytes(777)).unwrap();
    let sparse = fixed.join("sparse.img");
    {
        let f = fs::File::create(&sparse).unwrap();
        f.set_len(3 << 20).unwrap();
        f.write_all_at(&rng.bytes(5000), rng.below(3 << 20) & !4095)
            .unwrap();
    }
    let raw_name = fixed.join(OsString::from_vec(vec![b'r', 0xff, 0xfe, b'w']));
    fs::write(&raw_name, b"raw name").unwrap();
    let hard = fixed.join("hardlink to big");
    fs::hard_link(&big, &hard).unwrap();
    let dangling = fixed.join("dangling");
    std::os::unix::fs::symlink("/nonexistent/📁/target", &dangling).unwrap();
    let live = fixed.join("live");
    std::os::unix::fs::symlink("setuid-tool", &live).unwrap();
    for (k, (p, mode)) in [
        (empty, 0o600),
        (setuid, 0o4755),
        (sparse, 0o640),
        (raw_name, 0o644),
    ]
    .into_iter()
    .enumerate()
    {
        built.files.push(p.clone());
        built.meta.push((
            p,
            Meta {
                mode,
                mtime: t(k as i64 + 1),
                owner: owner(&mut rng),
                symlink: false,
            },
        ));
    }
    built.files.push(hard);
    for (k, p) in [dangling, live].into_iter().enumerate() {
        built.meta.push((
            p,
            Meta {
                mode: 0,
                mtime: t(k as i64 + 10),
                owner: owner(&mut rng),
                symlink: true,
            },
        ));
    }

    // The drawn entries.
    for s in &case.entries {
        let parent = dirs[s.parent % dirs.len()].clone();
        let path = free_path(&parent, &s.name);
        let mut meta = Meta {
            mode: 0,
            mtime: s.mtime,
            owner: s.owner,
            symlink: false,
        };
        match &s.what {
            What::File(c) => {
                write_content(&path, c, &built.files);
                built.files.push(path.clone());
                meta.mode = file_modes[s.mode % file_modes.len()];
            }
            What::Dir => {
                fs::create_dir(&path).unwrap();
                dirs.push(path.clone());
                meta.mode = DIR_MODES[s.mode % DIR_MODES.len()];
                dir_meta.push(meta);
                continue;
            }
            What::Symlink(link) => {
                let target = match link {
                    Link::Raw(t) => t.clone(),
                    Link::Sibling(i) => {
                        let mut names: Vec<OsString> = fs::read_dir(&parent)
                            .unwrap()
                            .map(|e| e.unwrap().file_name())
                            .collect();
                        names.sort();
                        if names.is_empty() {
                            OsString::from("nothing here")
                        } else {
                            names[i % names.len()].clone()
                        }
                    }
                };
                std::os::unix::fs::symlink(&target, &path).unwrap();
                meta.symlink = true;
            }
            What::Hardlink(i) => {
                let original = built.files[i % built.files.len()].clone();
                fs::hard_link(&original, &path).unwrap();
                built.files.push(path);
                // Metadata belongs to the shared inode, already recorded for the original.
                continue;
            }
        }
        built.meta.push((path, meta));
    }
    for (p, m) in &built.meta {
        apply(p, *m, as_root);
    }
    // Children before parents, so setting a directory's metadata is the last thing to touch it.
    for (p, m) in dirs.iter().zip(dir_meta.iter()).rev() {
        apply(p, *m, as_root);
        built.dirs.push((p.clone(), *m));
    }
    built
}

/// Apply the case's changes; returns how many file paths (hard links count each) now differ.
fn modify(built: &Built, changes: &[(usize, Change)]) -> u64 {
    let mut inodes = HashSet::new();
    for (i, change) in changes {
        let path = &built.files[i % built.files.len()];
        let before = fs::metadata(path).unwrap();
        let mode = before.mode() & 0o7777;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
        let old_mtime = (before.mtime(), before.mtime_nsec() as u32);
        let new_mtime = match change {
            Change::Append(bytes, t) => {
                OpenOptions::new()
                    .append(true)
                    .open(path)
                    .unwrap()
                    .write_all(bytes)
                    .unwrap();
                *t
            }
            Change::RewriteKeepMtime(seed) => {
                let len = before.len().max(3) as usize;
                let f = OpenOptions::new().write(true).open(path).unwrap();
                f.write_all_at(&Prng::new(*seed).bytes(len), 0).unwrap();
                old_mtime
            }
            Change::Touch(t) => *t,
        };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        set_times(path, (1_600_000_000, 0), new_mtime);
        inodes.insert(before.ino());
    }
    built
        .files
        .iter()
        .filter(|p| inodes.contains(&fs::metadata(p).unwrap().ino()))
        .count() as u64
}

/// Restore `snapshot` with --verify into a fresh target and compare with `src`.
fn restore_and_compare(repo: &Repo, snapshot: &str, src: &Path, files: u64) {
    let target = tempdir("bulwark-restore-");
    let out = repo.restore(snapshot, target.path(), &["--verify"]);
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(
        u64_of(&report, "files_verified"),
        u64_of(&report, "files"),
        "{report}"
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
    // Every regular file below the source, plus none elsewhere: the ancestors hold directories only.
    assert_eq!(u64_of(&report, "files"), files, "{report}");
    assert_same_tree(src, &restored_at(target.path(), src), Compare::ALL);
}

fn round_trip(case: &Case, as_root: bool) {
    let work = tempdir("bulwark-src-");
    let src = work.path().join("src");
    let built = build(&src, case, as_root);
    let files = built.files.len() as u64;
    let repo = Repo::init(&["--chunk-avg-kib", "64"]);

    let first = repo.backup(&[&src], &[]);
    assert_eq!(u64_of(&first, "files_new"), files, "{first}");
    assert_eq!(u64_of(&first, "total_files"), files, "{first}");
    assert_eq!(first["unreadable"], serde_json::json!([]), "{first}");
    // The 1-2 MiB file spans many 64 KiB-average chunks.
    assert!(u64_of(&first, "blobs_added") >= 5, "{first}");
    restore_and_compare(&repo, &id_of(&first), &src, files);

    let changed = modify(&built, &case.changes);
    let second = repo.backup(&[&src], &[]);
    assert_eq!(
        second["parent"].as_str(),
        Some(id_of(&first).as_str()),
        "{second}"
    );
    assert_eq!(u64_of(&second, "files_new"), 0, "{second}");
    assert_eq!(u64_of(&second, "files_changed"), changed, "{second}");
    assert_eq!(
        u64_of(&second, "files_unmodified"),
        files - changed,
        "{second}"
    );
    restore_and_compare(&repo, &id_of(&second), &src, files);
}

#[test]
fn random_trees_round_trip_exactly() {
    let as_root = running_as_root();
    let mut config = Config::with_cases(scale(16, 200));
    config.failure_persistence = None;
    config.max_shrink_iters = scale(32, 256);
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&case(), |c| {
        round_trip(&c, as_root);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// Holes read back as zero chunks, which restore skips: a sparse file must not be inflated.
#[test]
fn sparse_files_stay_sparse() {
    let work = tempdir("bulwark-sparse-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    let path = src.join("disk.img");
    let f = fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(&Prng::new(7).bytes(8192), 32 << 20).unwrap();
    f.write_all_at(b"tail", (64 << 20) - 4).unwrap();
    drop(f);
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    assert!(
        allocated(&path) < 1 << 20,
        "the test file system must support holes"
    );

    let repo = Repo::init(&["--chunk-avg-kib", "64"]);
    let snap = repo.backup(&[&src], &[]);
    // 64 MiB of zeros deduplicate to a handful of chunks.
    assert!(u64_of(&snap, "bytes_added_stored") < 1 << 20, "{snap}");
    let target = tempdir("bulwark-sparse-restore-");
    repo.restore(&id_of(&snap), target.path(), &["--verify"])
        .assert_ok();
    let restored = restored_at(target.path(), &path);
    assert_same_tree(&src, &restored_at(target.path(), &src), Compare::ALL);
    assert!(
        allocated(&restored) <= 2 << 20,
        "restored sparse file occupies {} bytes on disk",
        allocated(&restored)
    );
}

/// Files sharing content (copies and hard links) are stored once and each restores in full.
#[test]
fn duplicates_and_hard_links_are_stored_once_and_restore_fully() {
    let work = tempdir("bulwark-dups-");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    let data = Prng::new(11).bytes(3 << 20);
    fs::write(src.join("one"), &data).unwrap();
    fs::write(src.join("a/two"), &data).unwrap();
    fs::hard_link(src.join("one"), src.join("a/b/three")).unwrap();
    let repo = Repo::init(&["--chunk-avg-kib", "64"]);
    let snap = repo.backup(&[&src], &[]);
    assert_eq!(u64_of(&snap, "files_new"), 3, "{snap}");
    let stored = u64_of(&snap, "bytes_added_stored");
    assert!(
        stored < (3 << 20) + (256 << 10),
        "three copies of random data stored once: {snap}"
    );
    let target = tempdir("bulwark-dups-restore-");
    repo.restore(&id_of(&snap), target.path(), &["--verify"])
        .assert_ok();
    assert_same_tree(&src, &restored_at(target.path(), &src), Compare::ALL);
    let names: BTreeSet<_> = files_below(&restored_at(target.path(), &src))
        .into_iter()
        .collect();
    assert_eq!(names.len(), 3);
}

/// A FIFO restores as a FIFO with its mode and mtime, and restoring it must not block: opening a
/// FIFO (e.g. to set its times through a file handle) waits forever for a writer.
#[test]
fn fifos_restore_without_hanging() {
    let work = tempdir("bulwark-fifo-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    let fifo = src.join("pipe");
    mkfifo(&fifo);
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o640)).unwrap();
    set_times(&fifo, (1_500_000_000, 0), (1_234_567_890, 123_456_789));
    fs::write(src.join("file"), b"beside the pipe").unwrap();
    set_times(&src, (1_500_000_000, 0), (1_111_111_111, 222_222_222));
    let repo = Repo::init(&[]);
    let snap = repo.backup(&[&src], &[]);
    let target = tempdir("bulwark-fifo-restore-");
    let out = run_limited(
        &mut repo.cmd(&[
            OsString::from("restore"),
            OsString::from(id_of(&snap)),
            OsString::from("--verify"),
            OsString::from("--target"),
            target.path().as_os_str().to_owned(),
        ]),
        None,
        std::time::Duration::from_secs(30),
    );
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "{}", out.describe());
    assert_same_tree(&src, &restored_at(target.path(), &src), Compare::ALL);
}

#[test]
fn restoring_over_an_earlier_restore_replaces_files_without_touching_their_other_links() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("d/e")).unwrap();
    fs::write(src.path().join("d/e/f"), b"from the snapshot").unwrap();
    fs::write(src.path().join("d/g"), b"g").unwrap();
    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[src.path()], &[]));
    let target = tempfile::tempdir().unwrap();
    repo.restore(&snap, target.path(), &[]).assert_ok();
    let f = restored_at(target.path(), &src.path().join("d/e/f"));
    // Someone edits the restored file, and another name links to it.
    fs::write(&f, b"edited after the restore, longer than before").unwrap();
    let other = target.path().join("other-link");
    fs::hard_link(&f, &other).unwrap();
    repo.restore(&snap, target.path(), &[]).assert_ok();
    assert_eq!(fs::read(&f).unwrap(), b"from the snapshot");
    assert_eq!(
        fs::read(&other).unwrap(),
        b"edited after the restore, longer than before"
    );
    // A file where the snapshot has a directory stops the restore instead of being followed.
    let e = restored_at(target.path(), &src.path().join("d/e"));
    fs::remove_dir_all(&e).unwrap();
    fs::write(&e, b"in the way").unwrap();
    let out = repo.restore(&snap, target.path(), &[]);
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("is not a directory"),
        "{}",
        out.describe()
    );
    assert_eq!(fs::read(&e).unwrap(), b"in the way");
}
