//! What a restic user reaches for by habit: the commands (`diff`, `find`, `stats`, `dump`,
//! `tag`, `unlock`, `rewrite`, `key passwd`, `version`, `generate`), backup's and restore's
//! selection flags, `latest` with filters, `snapshots --latest/--group-by`, check's subset
//! forms, and clear words for another tool's repository.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// src/{a.txt, docs/share/doc/readme, secret.key, big.bin, cache/CACHEDIR.TAG + cache/junk,
/// marked/.nobackup + marked/x, Photo.JPG}
fn tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    for d in ["docs/share/doc", "cache", "marked", "keep"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("docs/share/doc/readme"), b"documentation").unwrap();
    fs::write(src.join("docs/notes"), b"notes").unwrap();
    fs::write(src.join("secret.key"), b"-----BEGIN PRIVATE KEY-----").unwrap();
    fs::write(src.join("big.bin"), Prng::new(1).bytes(300_000)).unwrap();
    fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache",
    )
    .unwrap();
    fs::write(src.join("cache/junk"), b"junk").unwrap();
    fs::write(src.join("marked/.nobackup"), b"").unwrap();
    fs::write(src.join("marked/x"), b"x").unwrap();
    fs::write(src.join("keep/CACHEDIR.TAG"), b"not the signature").unwrap();
    fs::write(src.join("Photo.JPG"), b"jpeg").unwrap();
    src
}

/// Paths of files in a snapshot, relative to `src`.
fn listed(repo: &Repo, snap: &str, src: &Path) -> BTreeSet<String> {
    let v = repo.json(&["ls", snap, "--json"]);
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file")
        .filter_map(|e| {
            Path::new(e["path"].as_str().unwrap())
                .strip_prefix(src)
                .ok()
                .map(|p| p.display().to_string())
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn backup_selection_flags_work_as_in_restic() {
    let work = tempdir("bulwark-flags-");
    let src = tree(work.path());
    let repo = Repo::init(&[]);
    let all = set(&[
        "a.txt",
        "docs/share/doc/readme",
        "docs/notes",
        "secret.key",
        "big.bin",
        "cache/CACHEDIR.TAG",
        "cache/junk",
        "marked/.nobackup",
        "marked/x",
        "keep/CACHEDIR.TAG",
        "Photo.JPG",
    ]);
    let without = |gone: &[&str]| -> BTreeSet<String> {
        all.iter()
            .filter(|p| !gone.iter().any(|g| p.starts_with(g)))
            .cloned()
            .collect()
    };
    // A dry run reads everything, says what it would store, and writes nothing.
    let data_before = repo.objects("data");
    let dry = repo.json(&[
        OsString::from("backup"),
        OsString::from("--json"),
        OsString::from("--dry-run"),
        src.as_os_str().to_owned(),
    ]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["summary"]["files_new"], 11, "{dry}");
    assert!(u64_of(&dry["summary"], "bytes_added") >= 300_000, "{dry}");
    assert_eq!(repo.objects("data"), data_before);
    assert!(repo.objects("index").is_empty());
    assert!(repo.snapshots().is_empty());

    // Sub-path patterns match at any depth; --iexclude ignores case.
    let ex_file = work.path().join("excludes");
    fs::write(&ex_file, "# secrets\n\nsecret.key\n").unwrap();
    let snap = id_of(&repo.backup(
        &[&src],
        &[
            "--exclude",
            "share/doc",
            "--iexclude",
            "*.jpg",
            "--exclude-file",
            ex_file.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        listed(&repo, &snap, &src),
        without(&["docs/share", "Photo.JPG", "secret.key"])
    );
    // Caches (only with the real signature), marker files, large files.
    let snap = id_of(&repo.backup(
        &[&src],
        &[
            "--exclude-caches",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-larger-than",
            "100K",
        ],
    ));
    assert_eq!(
        listed(&repo, &snap, &src),
        without(&["cache/", "marked/", "big.bin"])
    );
    // --files-from names the targets.
    let list = work.path().join("list");
    fs::write(
        &list,
        format!(
            "# two of them\n{}\n\n{}\n",
            src.join("a.txt").display(),
            src.join("docs").display()
        ),
    )
    .unwrap();
    let out = repo.run(&["backup", "--json", "--files-from", list.to_str().unwrap()]);
    out.assert_ok();
    assert_eq!(
        listed(&repo, &id_of(&out.json()), &src),
        set(&["a.txt", "docs/share/doc/readme", "docs/notes"])
    );
    // -v names what is new.
    fs::write(src.join("fresh.txt"), b"new").unwrap();
    let out = repo.run(&[
        OsString::from("backup"),
        OsString::from("-v"),
        src.as_os_str().to_owned(),
    ]);
    out.assert_ok();
    assert!(
        out.stderr
            .contains(&format!("new {}", src.join("fresh.txt").display())),
        "{}",
        out.describe()
    );
}

/// `-x` keeps a backup on one file system: /dev/shm (tmpfs) below /dev (devtmpfs) is stored
/// as an empty directory.
#[test]
fn one_file_system_stores_a_mount_point_empty() {
    let (dev, shm) = (fs::metadata("/dev"), fs::metadata("/dev/shm"));
    let (Ok(dev), Ok(shm)) = (dev, shm) else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    if dev.dev() == shm.dev() {
        eprintln!("skipped: /dev/shm is not a mount point here");
        return;
    }
    let marker = tempfile::Builder::new()
        .prefix("bulwark-onefs-")
        .tempfile_in("/dev/shm")
        .unwrap();
    let repo = Repo::init(&[]);
    let out = repo.run(&["backup", "--json", "-x", "/dev"]);
    assert!(out.code == 0 || out.code == 3, "{}", out.describe());
    let snap = id_of(&out.json());
    let entries = repo.json(&["ls", &snap, "/dev", "--json"]);
    let paths: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/dev/shm"), "{paths:?}");
    assert!(paths.contains(&"/dev/null"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("/dev/shm/")),
        "nothing below the mount point: {paths:?}"
    );
    drop(marker);
}

#[test]
fn restore_flags_and_latest_with_filters() {
    let work = tempdir("bulwark-rflags-");
    let src = tree(work.path());
    let repo = Repo::init(&[]);
    let s = |v: &Value| id_of(v);
    let on_alpha = s(&repo.backup(&[&src], &["--host", "alpha", "--tag", "daily"]));
    fs::write(src.join("a.txt"), b"changed on beta").unwrap();
    let _on_beta = s(&repo.backup(&[&src], &["--host", "beta"]));

    // `latest` honours --host, --tag and --path.
    let target = tempdir("bulwark-rflags-t-");
    repo.restore("latest", target.path(), &["--host", "alpha"])
        .assert_ok();
    let a = restored_at(target.path(), &src.join("a.txt"));
    assert_eq!(fs::read(&a).unwrap(), b"alpha");
    let out = repo.restore("latest", target.path(), &["--tag", "nightly"]);
    out.assert_code(1);
    let other = tempdir("bulwark-rflags-o-");
    repo.restore(
        "latest",
        other.path(),
        &["--path", src.to_str().unwrap(), "--host", "beta"],
    )
    .assert_ok();
    assert_eq!(
        fs::read(restored_at(other.path(), &src.join("a.txt"))).unwrap(),
        b"changed on beta"
    );

    // --exclude leaves paths out.
    let ex = tempdir("bulwark-rflags-x-");
    repo.restore(
        &on_alpha,
        ex.path(),
        &["--exclude", "*.bin", "--exclude", "share/doc"],
    )
    .assert_ok();
    let back = restored_at(ex.path(), &src);
    assert!(back.join("a.txt").exists());
    assert!(!back.join("big.bin").exists());
    assert!(!back.join("docs/share/doc").exists());
    assert!(back.join("docs/notes").exists());

    // --overwrite never keeps what is there; if-changed replaces only what differs.
    fs::write(&a, b"edited by hand").unwrap();
    let out = repo.restore(&on_alpha, target.path(), &["--overwrite", "never"]);
    out.assert_ok();
    assert_eq!(fs::read(&a).unwrap(), b"edited by hand");
    assert!(u64_of(&out.json(), "skipped") >= 1);
    let out = repo.restore(&on_alpha, target.path(), &["--overwrite", "if-changed"]);
    out.assert_ok();
    assert_eq!(fs::read(&a).unwrap(), b"alpha");
    // Everything else was unchanged, so kept; a.txt differed, so replaced.
    assert_eq!(u64_of(&out.json(), "skipped"), 10, "{}", out.describe());

    // --delete removes what the snapshot does not have, and only that.
    let stray = restored_at(target.path(), &src.join("docs/stray"));
    fs::write(&stray, b"not in the snapshot").unwrap();
    fs::create_dir(restored_at(target.path(), &src.join("stray-dir"))).unwrap();
    let out = repo.restore(&on_alpha, target.path(), &["--delete"]);
    out.assert_ok();
    assert_eq!(u64_of(&out.json(), "deleted"), 2, "{}", out.describe());
    assert!(!stray.exists());
    let (_fresh, want) = src_at(&src, &on_alpha, &repo);
    assert_same_tree(&want, &restored_at(target.path(), &src), Compare::CONTENT);

    // An --include that matches nothing says so.
    let none = tempdir("bulwark-rflags-n-");
    let out = repo.restore(&on_alpha, none.path(), &["--include", "*.nothing"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("matches nothing"), "{}", out.describe());
}

/// The source tree as `snap` recorded it, restored fresh for comparison (in the returned
/// temporary directory).
fn src_at(src: &Path, snap: &str, repo: &Repo) -> (tempfile::TempDir, PathBuf) {
    let fresh = tempdir("bulwark-fresh-");
    repo.restore(snap, fresh.path(), &[]).assert_ok();
    let at = restored_at(fresh.path(), src);
    (fresh, at)
}

#[test]
fn snapshots_latest_and_group_by() {
    let work = tempdir("bulwark-groups-");
    let src = tree(work.path());
    let repo = Repo::init(&[]);
    for (host, time) in [
        ("alpha", "2026-01-01T00:00:00Z"),
        ("alpha", "2026-01-02T00:00:00Z"),
        ("alpha", "2026-01-03T00:00:00Z"),
        ("beta", "2026-01-01T00:00:00Z"),
        ("beta", "2026-01-02T00:00:00Z"),
    ] {
        repo.backup(&[&src], &["--host", host, "--time", time]);
    }
    let v = repo.json(&["snapshots", "--json", "--latest", "1", "--group-by", "host"]);
    let groups = v.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{v}");
    for g in groups {
        let snaps = g["snapshots"].as_array().unwrap();
        assert_eq!(snaps.len(), 1, "{v}");
        let want = if g["group_key"]["hostname"] == "alpha" {
            "2026-01-03"
        } else {
            "2026-01-02"
        };
        assert!(snaps[0]["time"].as_str().unwrap().starts_with(want), "{v}");
    }
    let flat = repo.json(&["snapshots", "--json", "--latest", "2", "--host", "alpha"]);
    assert_eq!(flat.as_array().unwrap().len(), 2, "{flat}");
    let text = repo.run(&["snapshots", "--group-by", "host"]);
    text.assert_ok();
    assert!(
        text.stdout.contains("snapshots for host [alpha]"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.ends_with("5 snapshots\n"), "{}", text.stdout);
}

#[test]
fn diff_find_stats_and_dump() {
    let work = tempdir("bulwark-inspect-");
    let src = tree(work.path());
    let repo = Repo::init(&[]);
    let first = id_of(&repo.backup(&[&src], &[]));
    fs::write(src.join("a.txt"), b"alpha, changed").unwrap();
    fs::remove_file(src.join("docs/notes")).unwrap();
    fs::write(src.join("docs/added"), b"added").unwrap();
    fs::set_permissions(
        src.join("Photo.JPG"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let second = id_of(&repo.backup(&[&src], &[]));

    let d = repo.json(&["diff", &first, &second, "--json"]);
    let changes: BTreeSet<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = |rel: &str| src.join(rel).display().to_string();
    for want in [
        ("M", p("a.txt")),
        ("-", p("docs/notes")),
        ("+", p("docs/added")),
        ("U", p("Photo.JPG")),
    ] {
        assert!(
            changes.contains(&(want.0.to_string(), want.1.clone())),
            "{want:?} in {d}"
        );
    }
    assert!(
        !changes.iter().any(|(_, path)| path == &p("big.bin")),
        "{d}"
    );
    assert_eq!(d["stats"]["files_added"], 1, "{d}");
    assert_eq!(d["stats"]["files_removed"], 1, "{d}");
    assert_eq!(d["stats"]["files_changed"], 1, "{d}");
    let text = repo.run(&["diff", &first, &second]);
    text.assert_ok();
    assert!(
        text.stdout.contains(&format!("+    {}", p("docs/added"))),
        "{}",
        text.stdout
    );

    // find: in which snapshots, where.
    let f = repo.json(&["find", "notes", "--json"]);
    let found = f.as_array().unwrap();
    assert_eq!(found.len(), 1, "only the first snapshot has it: {f}");
    assert_eq!(found[0]["snapshot"], first.as_str());
    assert_eq!(found[0]["matches"][0]["path"], p("docs/notes"));
    let f = repo.json(&["find", "-i", "photo.jpg", "--json"]);
    assert_eq!(f.as_array().unwrap().len(), 2, "{f}");

    // stats: restored size per snapshot, and the distinct data in storage.
    let r = repo.json(&["stats", &first, "--json"]);
    assert_eq!(r["files"], 11, "{r}");
    let (_fresh, at) = src_at(&src, &first, &repo);
    let bytes: u64 = files_below(&at)
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(u64_of(&r, "total_size"), bytes, "{r}");
    let both = repo.json(&["stats", "--json"]);
    assert_eq!(u64_of(&both, "snapshots"), 2);
    let raw = repo.json(&["stats", "--mode", "raw-data", "--json"]);
    assert!(u64_of(&raw, "blobs") > 11, "{raw}");
    assert!(u64_of(&raw, "stored_size") > 0, "{raw}");
    assert!(
        u64_of(&raw, "total_size") < 2 * bytes,
        "deduplicated: {raw}"
    );

    // dump: a file as it is, a directory as tar.
    let out = repo.run(&["dump", &first, &p("a.txt")]);
    out.assert_ok();
    assert_eq!(out.stdout, "alpha");
    let mut child = repo
        .cmd(&["dump", &second, &p("docs")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut archive = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut archive)
        .unwrap();
    assert_eq!(finish(child).code, 0);
    let mut names = BTreeSet::new();
    let mut t = tar::Archive::new(&archive[..]);
    for entry in t.entries().unwrap() {
        let mut e = entry.unwrap();
        let name = e.path().unwrap().display().to_string();
        let name = name.trim_end_matches('/').to_string();
        if name.ends_with("docs/added") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            assert_eq!(s, "added");
        }
        names.insert(name);
    }
    let rel = |r: &str| src.join(r).strip_prefix("/").unwrap().display().to_string();
    assert_eq!(
        names,
        [
            rel("docs/added"),
            rel("docs/share"),
            rel("docs/share/doc"),
            rel("docs/share/doc/readme")
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn tag_moves_holds_and_rewrite_removes_a_secret() {
    let work = tempdir("bulwark-edit-");
    let src = tree(work.path());
    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[&src], &["--tag", "a"]));
    repo.run(&["hold", "add", &snap, "--reason", "contract"])
        .assert_ok();
    let t = repo.json(&["tag", &snap, "--add", "b,c", "--remove", "a", "--json"]);
    let new = t["changed"][0]["new"].as_str().unwrap().to_string();
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], new.as_str());
    assert_eq!(snaps[0]["tags"], serde_json::json!(["b", "c"]));
    assert_eq!(snaps[0]["original"], snap.as_str());
    let holds = repo.json(&["hold", "list", "--json"]);
    assert_eq!(
        holds[0]["snapshot"],
        new.as_str(),
        "the hold follows: {holds}"
    );
    let t = repo.json(&["tag", "--set", "only", "--json"]);
    let newer = t["changed"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(repo.snapshots()[0]["tags"], serde_json::json!(["only"]));

    // A held snapshot keeps its data: rewrite --forget refuses it.
    repo.run(&["rewrite", &newer, "--exclude", "secret.key", "--forget"])
        .assert_code(1);
    repo.run(&["hold", "remove", &newer]).assert_ok();
    let dry = repo.json(&["rewrite", "--exclude", "secret.key", "--dry-run", "--json"]);
    assert_eq!(dry["rewritten"][0]["files_removed"], 1, "{dry}");
    assert_eq!(
        repo.snapshots()[0]["id"],
        newer.as_str(),
        "a dry run changes nothing"
    );
    let r = repo.json(&["rewrite", "--exclude", "secret.key", "--forget", "--json"]);
    assert_eq!(r["rewritten"][0]["forgotten"], true, "{r}");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    let rewritten = id_of(&snaps[0]);
    assert_eq!(
        snaps[0]["original"],
        snap.as_str(),
        "the line's first snapshot"
    );
    assert!(!listed(&repo, &rewritten, &src).contains("secret.key"));
    assert!(listed(&repo, &rewritten, &src).contains("a.txt"));
    assert_eq!(
        repo.json(&["find", "secret.key", "--json"]),
        serde_json::json!([])
    );
    let pruned = repo.json(&["prune", "--max-unused", "0%", "--json"]);
    assert!(u64_of(&pruned, "bytes_to_free") > 0, "{pruned}");
    repo.assert_clean();
    // The rest restores and passes its restore test.
    let target = tempdir("bulwark-edit-t-");
    repo.restore(&rewritten, target.path(), &["--verify"])
        .assert_ok();
    let rt = repo.run(&["restore-test", &rewritten, "--json"]);
    rt.assert_ok();
}

#[test]
fn unlock_removes_stale_locks_and_remove_all_every_lock() {
    let repo = Repo::init(&[]);
    // A backup waiting on its stdin holds a live lock; wait until `locks` locks are there.
    let spawn = |locks: usize| {
        let c = repo
            .cmd(&["backup", "--stdin-name", "s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while repo.objects("locks").len() < locks {
            assert!(start.elapsed() < WATCHDOG, "no lock appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        c
    };
    let mut dead = spawn(1);
    dead.kill().unwrap();
    dead.wait().unwrap();
    assert_eq!(
        repo.objects("locks").len(),
        1,
        "a killed process leaves its lock"
    );
    let mut live = spawn(2);
    assert_eq!(repo.objects("locks").len(), 2);
    let u = repo.json(&["unlock", "--json"]);
    assert_eq!(
        u["removed"].as_array().unwrap().len(),
        1,
        "only the stale one: {u}"
    );
    assert_eq!(repo.objects("locks").len(), 1);
    let u = repo.json(&["unlock", "--remove-all", "--json"]);
    assert_eq!(u["removed"].as_array().unwrap().len(), 1, "{u}");
    assert!(repo.objects("locks").is_empty());
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn key_passwd_init_and_key_add_take_password_files() {
    let dir = tempdir("bulwark-passwd-");
    let (first, second, third) = (
        dir.path().join("first"),
        dir.path().join("second"),
        dir.path().join("third"),
    );
    fs::write(&first, "first passphrase\n").unwrap();
    fs::write(&second, "second passphrase\n").unwrap();
    fs::write(&third, "third passphrase\n").unwrap();
    let repo_path = dir.path().join("repo");
    let with = |pw: &Path, args: &[&str]| {
        run(bulwark()
            .arg("-r")
            .arg(&repo_path)
            .arg("--password-file")
            .arg(pw)
            .args(args))
    };
    run(bulwark()
        .arg("-r")
        .arg(&repo_path)
        .arg("init")
        .arg("--new-password-file")
        .arg(&first))
    .assert_ok();
    with(&first, &["snapshots"]).assert_ok();
    with(
        &first,
        &[
            "key",
            "add",
            "--new-password-file",
            second.to_str().unwrap(),
        ],
    )
    .assert_ok();
    with(&second, &["snapshots"]).assert_ok();
    let out = with(
        &first,
        &[
            "key",
            "passwd",
            "--json",
            "--new-password-file",
            third.to_str().unwrap(),
        ],
    );
    out.assert_ok();
    with(&first, &["snapshots"]).assert_code(12);
    with(&third, &["snapshots"]).assert_ok();
    with(&second, &["snapshots"]).assert_ok();
    let keys = with(&third, &["key", "list", "--json"]).json();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
}

#[test]
fn version_completions_man_pages_and_help_name_the_environment() {
    let v = run(bulwark().args(["version", "--json"]));
    v.assert_ok();
    assert_eq!(v.json()["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v.json()["repository_format"], 1);
    let bash = run(bulwark().args(["generate", "--completion", "bash"]));
    bash.assert_ok();
    assert!(
        bash.stdout.contains("_bulwark") && bash.stdout.contains("rewrite"),
        "{}",
        &bash.stdout[..200.min(bash.stdout.len())]
    );
    let zsh = run(bulwark().args(["generate", "--completion", "zsh"]));
    assert!(zsh.stdout.starts_with("#compdef bulwark"));
    let dir = tempdir("bulwark-man-");
    run(bulwark().args(["generate", "--man"]).arg(dir.path())).assert_ok();
    let page = fs::read_to_string(dir.path().join("bulwark.1")).unwrap();
    assert!(page.contains(".TH bulwark"), "{page}");
    assert!(dir.path().join("bulwark-backup.1").exists());
    assert!(dir.path().join("bulwark-key-passwd.1").exists());
    let help = run(bulwark().arg("--help"));
    help.assert_ok();
    for var in [
        "BULWARK_REPO",
        "BULWARK_PASSWORD_FILE",
        "BULWARK_PASSWORD ",
        "BULWARK_KEY_FILE",
    ] {
        assert!(
            help.stdout.contains(var),
            "--help names {var}:\n{}",
            help.stdout
        );
    }
}

#[test]
fn check_subsets_read_at_least_one_pack_and_accept_restics_forms() {
    let work = tempdir("bulwark-subset-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("f{i}")), Prng::new(i).bytes(1 << 20)).unwrap();
    }
    let repo = Repo::init(&["--pack-size-mib", "1", "--chunk-avg-kib", "64"]);
    repo.backup(&[&src], &[]);
    let pack_sizes = repo.objects("data");
    let packs = pack_sizes.len();
    assert!(packs >= 6, "{packs} packs");
    let read = |subset: &str| {
        let (out, v) = repo.check(&["--read-data-subset", subset]);
        out.assert_ok();
        u64_of(&v, "packs_read") as usize
    };
    assert_eq!(read("1%"), 1, "at least one pack");
    assert_eq!(read("50%"), packs.div_ceil(2));
    assert_eq!(read("100%"), packs);
    let groups: usize = (1..=3).map(|n| read(&format!("{n}/3"))).sum();
    assert_eq!(
        groups, packs,
        "1/3, 2/3 and 3/3 together read every pack once"
    );
    assert_eq!(read("1/3"), read("1/3"), "a group is the same every time");
    // A byte budget never reads more than it allows (beyond the one pack it always reads), and
    // the packs it picks are random: the most it can take is the smallest packs that fit.
    let mut ascending: Vec<u64> = pack_sizes.values().copied().collect();
    ascending.sort_unstable();
    let most = ascending
        .iter()
        .scan(0u64, |total, size| {
            *total += size;
            Some(*total)
        })
        .take_while(|&total| total <= 1 << 20)
        .count()
        .max(1);
    let small = read("1M");
    assert!(
        (1..=most).contains(&small) && small < packs,
        "1M of {packs} packs ({ascending:?} bytes) read {small}, at most {most}"
    );
    for bad in ["0%", "lots", "0/3", "4/3", "0M"] {
        repo.run(&["check", "--read-data-subset", bad])
            .assert_code(2);
    }
}

#[test]
fn another_tools_repository_is_named_as_such() {
    let dir = tempdir("bulwark-foreign-");
    let restic_repo = dir.path().join("restic");
    let made = Command::new("restic")
        .args(["init", "-q", "-r"])
        .arg(&restic_repo)
        .env("RESTIC_PASSWORD", "x")
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        // No restic here: the same shape, an encrypted (binary) config beside keys/ and data/.
        fs::create_dir_all(restic_repo.join("keys")).unwrap();
        fs::write(restic_repo.join("config"), Prng::new(3).bytes(155)).unwrap();
    }
    let out = run(bulwark()
        .arg("-r")
        .arg(&restic_repo)
        .env("BULWARK_PASSWORD", "x")
        .arg("snapshots"));
    out.assert_code(10).assert_one_error_line();
    assert!(
        out.stderr.contains("is not a Bulwark repository"),
        "{}",
        out.describe()
    );
    assert!(!out.stderr.contains("repair"), "{}", out.describe());
    let borg = dir.path().join("borg");
    fs::create_dir(&borg).unwrap();
    fs::write(borg.join("config"), "[repository]\nversion = 1\n").unwrap();
    let out = run(bulwark()
        .arg("-r")
        .arg(&borg)
        .env("BULWARK_PASSWORD", "x")
        .arg("snapshots"));
    out.assert_code(10);
    assert!(out.stderr.contains("borg"), "{}", out.describe());
}

#[test]
fn small_refusals_say_what_to_do() {
    let repo = Repo::init(&[]);
    let work = tempdir("bulwark-small-");
    fs::write(work.path().join("f"), b"f").unwrap();
    let snap = id_of(&repo.backup(&[work.path()], &[]));
    let out = repo.run(&["hold", "add", &snap, "--until", "2001-01-01"]);
    out.assert_code(2).assert_one_error_line();
    assert!(out.stderr.contains("in the past"), "{}", out.describe());
    let out = run(bulwark()
        .args([
            "-r",
            "s3://bucket/prefix?region=us-east-1&endpoint=http://127.0.0.1:9",
        ])
        .env("BULWARK_PASSWORD", "x")
        .arg("snapshots"));
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("allow_http=true"), "{}", out.describe());
    let snaps = repo.snapshots();
    assert!(
        snaps[0]["uid"].is_u64() && snaps[0]["gid"].is_u64(),
        "{}",
        snaps[0]
    );
    assert!(!snaps[0]["username"].as_str().unwrap().is_empty());
}

/// One damaged pack that holds many files: a few summary lines on stderr, the full lists in
/// `--json`.
#[test]
fn damage_is_summarised_per_pack_and_snapshot() {
    let work = tempdir("bulwark-dmg-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..200 {
        fs::write(src.join(format!("f{i:03}")), Prng::new(i).bytes(2000)).unwrap();
    }
    let repo = Repo::init(&[]);
    repo.backup(&[&src], &[]);
    repo.backup(&[&src], &["--tag", "again"]);
    // The biggest pack holds the file data; damage one byte in its middle.
    let (name, size) = repo
        .objects("data")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap();
    flip_byte(&repo.pack_path(&name), size / 2);
    let out = repo.run(&["check", "--read-data"]);
    out.assert_code(1);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() <= 8,
        "a summary, not a list:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&format!("damaged pack: {name}")),
        "{}",
        out.describe()
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("snapshot ")).count(),
        2,
        "one line per snapshot:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("ERRORS FOUND"));
    assert!(out.stdout.lines().count() == 1, "{}", out.describe());
    // The full list is in --json: every file with data in the damaged pack, in both snapshots
    // (how many files that pack holds depends on how the parallel packers split them).
    let (_, v) = repo.check(&["--read-data"]);
    let affected: Vec<&str> = v["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let per_snapshot = |prefix: &str| -> std::collections::BTreeSet<&str> {
        affected
            .iter()
            .filter(|a| a.starts_with(prefix))
            .map(|a| a.split_once(':').unwrap().1)
            .collect()
    };
    let snapshots: std::collections::BTreeSet<&str> = affected
        .iter()
        .map(|a| a.split_once(':').unwrap().0)
        .collect();
    assert_eq!(snapshots.len(), 2, "{affected:?}");
    let [a, b]: [&str; 2] = snapshots
        .into_iter()
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let files = per_snapshot(a);
    assert_eq!(files, per_snapshot(b), "the same files in both snapshots");
    assert!(
        files.len() >= 20,
        "every file of the pack, not one: {files:?}"
    );
    assert_eq!(affected.len(), 2 * files.len());
    for l in lines.iter().filter(|l| l.starts_with("snapshot ")) {
        assert!(
            l.contains(&format!(
                "{} entries cannot be restored intact",
                files.len()
            )),
            "{l}"
        );
    }
}
