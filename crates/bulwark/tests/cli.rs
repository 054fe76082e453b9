//! The command line as a user meets it: unreadable files (exit 3), stdin and command sources, key
//! slots, snapshot and path selection, include/exclude patterns, --time, --parent, `ls`,
//! `cat config` and usage errors.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Unreadable files.

/// Runs bulwark as `nobody` when the tests run as root (for whom mode 000 stops nothing).
struct AsNobody {
    bin: PathBuf,
}

impl AsNobody {
    fn new(scratch: &Path) -> AsNobody {
        let setpriv = Command::new("setpriv").arg("--version").output();
        assert!(
            setpriv.is_ok_and(|o| o.status.success()),
            "running as root: this test needs `setpriv` (util-linux) to drop to nobody"
        );
        let mut probe = Self::wrap(&bin());
        probe.arg("--version");
        let bin = if probe.output().is_ok_and(|o| o.status.success()) {
            bin()
        } else {
            // The build directory is out of nobody's reach: use a copy.
            let copy = scratch.join("bulwark");
            fs::copy(bin(), &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
            copy
        };
        AsNobody { bin }
    }

    fn wrap(bin: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        for v in [
            "BULWARK_REPO",
            "BULWARK_PASSWORD_FILE",
            "BULWARK_KEY_FILE",
            "BULWARK_LOG",
        ] {
            c.env_remove(v);
        }
        c.stdin(std::process::Stdio::null()).current_dir("/");
        c
    }

    fn cmd(&self, repo: &Path, args: &[&OsString]) -> Command {
        let mut c = Self::wrap(&self.bin);
        c.arg("-r")
            .arg(repo)
            .env("BULWARK_PASSWORD", PASSWORD)
            .args(args);
        c
    }
}

#[test]
fn unreadable_files_are_skipped_with_exit_3_and_the_rest_is_saved() {
    let as_root = running_as_root();
    let work = tempdir("bulwark-unreadable-");
    let base = work.path().to_path_buf();
    let src = base.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::create_dir_all(src.join("closed")).unwrap();
    fs::write(src.join("ok.txt"), b"readable").unwrap();
    fs::write(src.join("sub/ok.bin"), Prng::new(5).bytes(300_000)).unwrap();
    fs::write(src.join("secret"), b"nobody may read this").unwrap();
    fs::write(src.join("closed/inner.txt"), b"behind a closed door").unwrap();
    let repo_path = base.join("repo");
    let nobody = as_root.then(|| {
        // Everything on the way must be open to nobody: the temp dir is 0700 when made.
        chmod_tree_open(&base);
        for a in base.ancestors().skip(1) {
            let mode = fs::metadata(a).unwrap().permissions().mode();
            assert!(
                mode & 0o001 != 0,
                "{} is not searchable by others",
                a.display()
            );
        }
        AsNobody::new(&base)
    });
    let secret = src.join("secret");
    let closed = src.join("closed");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).unwrap();

    let run_as = |args: &[&str]| {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let refs: Vec<&OsString> = args.iter().collect();
        match &nobody {
            Some(n) => run(&mut n.cmd(&repo_path, &refs)),
            None => run(bulwark()
                .arg("-r")
                .arg(&repo_path)
                .env("BULWARK_PASSWORD", PASSWORD)
                .args(&args)),
        }
    };
    run_as(&["init"]).assert_ok();
    let out = run_as(&["backup", "--json", src.to_str().unwrap()]);
    out.assert_code(3);
    let report = out.json();
    let unreadable = strings(&report["unreadable"]);
    assert_eq!(unreadable.len(), 2, "{report}");
    assert!(
        unreadable
            .iter()
            .any(|u| u.starts_with(secret.to_str().unwrap())),
        "{report}"
    );
    assert!(
        unreadable
            .iter()
            .any(|u| u.starts_with(closed.to_str().unwrap())),
        "{report}"
    );
    assert_eq!(u64_of(&report, "files_unreadable"), 2, "{report}");
    assert!(
        out.stderr.contains(secret.to_str().unwrap()),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("warning"), "{}", out.describe());

    // The snapshot exists and restores everything else, exactly (restored by the test's own user,
    // so ownership comes back too).
    let user = |args: &[&str]| {
        run(bulwark()
            .arg("-r")
            .arg(&repo_path)
            .env("BULWARK_PASSWORD", PASSWORD)
            .args(args))
    };
    let snaps = user(&["snapshots", "--json"]);
    snaps.assert_ok();
    assert_eq!(snaps.json().as_array().unwrap().len(), 1);
    let target = base.join("target");
    user(&[
        "restore",
        &id_of(&report),
        "--verify",
        "--target",
        target.to_str().unwrap(),
    ])
    .assert_ok();
    // Put the permissions back for the comparison (and for clean-up when not root).
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).unwrap();
    let mut want = scan(&src);
    for gone in ["secret", "closed", "closed/inner.txt"] {
        want.remove(Path::new(gone)).unwrap();
    }
    let got = scan(&restored_at(&target, &src));
    assert_same_entries(&want, &got, Compare::ALL, "restore after unreadable files");
    assert!(!restored_at(&target, &secret).exists());
}

// ---------------------------------------------------------------------------------------------
// Streams.

#[test]
fn stdin_and_command_output_back_up_exactly_and_failures_save_nothing() {
    let repo = Repo::init(&[]);
    let mut data = Prng::new(8).text(1 << 20);
    data.extend(Prng::new(9).bytes(2 << 20));
    let out = run_with_input(
        &mut repo.cmd(&["backup", "--json", "--stdin-name", "db.sql"]),
        Some(&data),
    );
    out.assert_ok();
    let snap = out.json();
    assert_eq!(u64_of(&snap, "total_bytes"), data.len() as u64, "{snap}");
    let snaps = repo.snapshots();
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/db.sql"]));
    let target = tempdir("bulwark-stdin-");
    repo.restore(&id_of(&snap), target.path(), &["--verify"])
        .assert_ok();
    assert_eq!(fs::read(target.path().join("db.sql")).unwrap(), data);
    let listing = repo.json(&["ls", &id_of(&snap), "--json"]);
    assert_eq!(listing[0]["path"], "/db.sql", "{listing}");
    assert_eq!(
        listing[0]["size"].as_u64(),
        Some(data.len() as u64),
        "{listing}"
    );

    // A command's output.
    let snap = repo.json(&[
        "backup",
        "--json",
        "--stdin-name",
        "dump.txt",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "printf 'hello '; printf world",
    ]);
    let target = tempdir("bulwark-cmd-");
    repo.restore(&id_of(&snap), target.path(), &[]).assert_ok();
    assert_eq!(
        fs::read(target.path().join("dump.txt")).unwrap(),
        b"hello world"
    );

    // Failures: a command that fails after some output, one that does not exist, none at all,
    // and names that are not plain file names. None may leave a snapshot.
    let before = repo.snapshots().len();
    let failing = |args: &[&str], code: i32, hint: &str| {
        let mut all = vec!["backup", "--json"];
        all.extend_from_slice(args);
        let out = repo.run(&all);
        out.assert_code(code);
        assert!(out.stderr.starts_with("error:"), "{}", out.describe());
        assert!(
            out.stderr.contains(hint),
            "expected {hint:?}:\n{}",
            out.describe()
        );
        assert_eq!(repo.snapshots().len(), before, "{args:?} left a snapshot");
    };
    failing(
        &[
            "--stdin-name",
            "x",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "printf abc; exit 3",
        ],
        1,
        "failed",
    );
    failing(
        &[
            "--stdin-name",
            "x",
            "--stdin-from-command",
            "--",
            "/nonexistent/pg_dump",
            "db",
        ],
        1,
        "pg_dump",
    );
    failing(
        &[
            "--stdin-name",
            "x",
            "--stdin-from-command",
            "--",
            "no-such-program-bulwark-test",
        ],
        1,
        "no-such-program",
    );
    failing(&["--stdin-name", "x", "--stdin-from-command"], 1, "command");
    failing(&["--stdin-name", "a/b"], 1, "a/b");
    failing(&["--stdin-name", ".."], 1, "..");
}

// ---------------------------------------------------------------------------------------------
// Keys.

fn key_list(repo: &Repo, cred: &[&str]) -> Vec<Value> {
    let out = run(bulwark()
        .arg("-r")
        .arg(&repo.path)
        .args(cred)
        .args(["key", "list", "--json"]));
    out.assert_ok();
    out.json().as_array().unwrap().clone()
}

#[test]
fn key_slots_add_list_remove() {
    let repo = Repo::init(&[]);
    let dir = tempdir("bulwark-keys-");
    let pw_a = dir.path().join("a.txt");
    let pw_b = dir.path().join("b.txt");
    fs::write(&pw_a, format!("{PASSWORD}\n")).unwrap();
    fs::write(&pw_b, "second passphrase\nignored second line\n").unwrap();
    let key = dir.path().join("key");
    let (a, b, k) = (
        pw_a.to_str().unwrap(),
        pw_b.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let with = |cred: &[&str], args: &[&str]| {
        run(bulwark().arg("-r").arg(&repo.path).args(cred).args(args))
    };

    let added = run(repo
        .cmd(&["key", "add", "--json"])
        .env("BULWARK_NEW_PASSWORD_FILE", &pw_b));
    added.assert_ok();
    let id_b = id_of(&added.json());
    with(&["--password-file", b], &["snapshots"]).assert_ok();
    run(bulwark()
        .arg("-r")
        .arg(&repo.path)
        .env("BULWARK_PASSWORD_FILE", &pw_b)
        .arg("snapshots"))
    .assert_ok();
    with(&["--password-file", a], &["snapshots"]).assert_ok();

    let added = with(
        &["--password-file", b],
        &["key", "add", "--json", "--new-key-file", k],
    );
    added.assert_ok();
    let id_k = id_of(&added.json());
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "key files are private"
    );
    assert!(
        fs::read_to_string(&key)
            .unwrap()
            .starts_with("bulwark-key-v1:")
    );
    with(&["--key-file", k], &["snapshots"]).assert_ok();
    run(bulwark()
        .arg("-r")
        .arg(&repo.path)
        .env("BULWARK_KEY_FILE", &key)
        .arg("snapshots"))
    .assert_ok();

    // A backup made with the key file restores with a passphrase: one master key behind all slots.
    let work = tempdir("bulwark-keys-src-");
    fs::write(work.path().join("f"), b"one key for all").unwrap();
    with(
        &["--key-file", k],
        &["backup", work.path().to_str().unwrap()],
    )
    .assert_ok();
    let target = tempdir("bulwark-keys-restore-");
    with(
        &["--password-file", a],
        &[
            "restore",
            "latest",
            "--target",
            target.path().to_str().unwrap(),
        ],
    )
    .assert_ok();
    assert_eq!(
        fs::read(restored_at(target.path(), &work.path().join("f"))).unwrap(),
        b"one key for all"
    );

    let list = key_list(&repo, &["--password-file", a]);
    assert_eq!(list.len(), 3, "{list:?}");
    let current: Vec<&Value> = list.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    let id_a = id_of(current[0]);
    assert!(id_a != id_b && id_a != id_k);
    let kinds: BTreeSet<String> = list
        .iter()
        .map(|k| format!("{}:{}", id_of(k), k["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&format!("{id_k}:key_file")), "{kinds:?}");
    assert!(kinds.contains(&format!("{id_b}:passphrase")), "{kinds:?}");
    let via_key = key_list(&repo, &["--key-file", k]);
    let current: Vec<String> = via_key
        .iter()
        .filter(|k| k["current"] == true)
        .map(id_of)
        .collect();
    assert_eq!(current, vec![id_k.clone()]);

    // The key a session opened with cannot be removed by it.
    let out = with(&["--password-file", a], &["key", "remove", &id_a[..12]]);
    assert!(out.code != 0, "{}", out.describe());
    assert!(out.stderr.starts_with("error:"), "{}", out.describe());
    assert_eq!(key_list(&repo, &["--password-file", a]).len(), 3);
    // An ambiguous prefix removes nothing.
    assert_ne!(
        with(&["--password-file", a], &["key", "remove", ""]).code,
        0
    );
    assert_eq!(key_list(&repo, &["--password-file", a]).len(), 3);

    let removed = with(
        &["--password-file", a],
        &["key", "remove", "--json", &id_b[..10]],
    );
    removed.assert_ok();
    assert_eq!(removed.json()["removed"], id_b.as_str());
    with(&["--password-file", b], &["snapshots"])
        .assert_code(12)
        .assert_one_error_line();
    with(&["--password-file", a], &["snapshots"]).assert_ok();
    with(&["--key-file", k], &["snapshots"]).assert_ok();
    assert_eq!(key_list(&repo, &["--key-file", k]).len(), 2);

    // A key file is never overwritten.
    let out = with(
        &["--password-file", a],
        &["key", "add", "--new-key-file", k],
    );
    assert_eq!(out.code, 1, "{}", out.describe());
    with(&["--key-file", k], &["snapshots"]).assert_ok();
    assert_eq!(key_list(&repo, &["--key-file", k]).len(), 2);
}

#[test]
fn a_repository_created_with_a_key_file_opens_only_with_it() {
    let dir = tempdir("bulwark-keyinit-");
    let repo = dir.path().join("repo");
    let key = dir.path().join("key");
    run(bulwark()
        .arg("-r")
        .arg(&repo)
        .args(["init", "--new-key-file"])
        .arg(&key))
    .assert_ok();
    run(bulwark()
        .arg("-r")
        .arg(&repo)
        .arg("--key-file")
        .arg(&key)
        .arg("snapshots"))
    .assert_ok();
    run(bulwark()
        .arg("-r")
        .arg(&repo)
        .env("BULWARK_PASSWORD", PASSWORD)
        .arg("snapshots"))
    .assert_code(12);
    // Init refuses an existing repository, and an existing key file path.
    let again = run(bulwark()
        .arg("-r")
        .arg(&repo)
        .env("BULWARK_PASSWORD", PASSWORD)
        .arg("init"));
    again.assert_code(1).assert_one_error_line();
    assert!(
        again.stderr.contains("already exists"),
        "{}",
        again.describe()
    );
    let other = dir.path().join("other");
    run(bulwark()
        .arg("-r")
        .arg(&other)
        .args(["init", "--new-key-file"])
        .arg(&key))
    .assert_code(1);
    run(bulwark()
        .arg("-r")
        .arg(&repo)
        .arg("--key-file")
        .arg(&key)
        .arg("snapshots"))
    .assert_ok();
}

// ---------------------------------------------------------------------------------------------
// Selection.

struct Tree {
    _work: tempfile::TempDir,
    src: PathBuf,
}

fn selection_tree() -> Tree {
    let work = tempdir("bulwark-select-");
    let src = work.path().join("src");
    for d in ["sub/deeper", "other", "binonly"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    let mut rng = Prng::new(10);
    fs::write(src.join("sub/a.txt"), rng.text(10_000)).unwrap();
    fs::write(src.join("sub/b.bin"), rng.bytes(200_000)).unwrap();
    fs::write(src.join("sub/deeper/c.txt"), b"deep").unwrap();
    fs::write(src.join("other/d.txt"), b"other").unwrap();
    fs::write(src.join("e.txt"), b"top").unwrap();
    fs::write(src.join("binonly/x.bin"), rng.bytes(1000)).unwrap();
    Tree { _work: work, src }
}

fn rel_files(root: &Path) -> BTreeSet<PathBuf> {
    files_below(root)
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

#[test]
fn restore_selects_subtrees_files_and_patterns() {
    let t = selection_tree();
    let src = &t.src;
    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[src], &[]));
    let short = &snap[..8];

    // ID:/path/to/dir restores that directory's contents into the target.
    let target = tempdir("bulwark-sel-");
    repo.restore(
        &format!("{short}:{}", src.join("sub").display()),
        target.path(),
        &["--verify"],
    )
    .assert_ok();
    let mut want = scan(&src.join("sub"));
    let mut got = scan(target.path());
    want.remove(Path::new(""));
    got.remove(Path::new(""));
    assert_same_entries(&want, &got, Compare::ALL, "restore of a subtree");

    // ID:/path/to/file restores that file alone.
    let target = tempdir("bulwark-sel-");
    repo.restore(
        &format!("{snap}:{}", src.join("e.txt").display()),
        target.path(),
        &[],
    )
    .assert_ok();
    assert_eq!(
        rel_files(target.path()),
        BTreeSet::from([PathBuf::from("e.txt")])
    );
    assert_eq!(fs::read(target.path().join("e.txt")).unwrap(), b"top");

    // A name pattern, and a full-path pattern.
    let target = tempdir("bulwark-sel-");
    repo.restore(short, target.path(), &["--include", "*.txt", "--verify"])
        .assert_ok();
    let base = restored_at(target.path(), src);
    let txt: BTreeSet<PathBuf> = ["sub/a.txt", "sub/deeper/c.txt", "other/d.txt", "e.txt"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(rel_files(&base), txt);
    assert!(
        !base.join("binonly").exists(),
        "a directory without matches is not created"
    );
    for f in &txt {
        assert_eq!(
            fs::read(base.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap()
        );
    }
    let target = tempdir("bulwark-sel-");
    let pattern = format!("{}/other/*", src.display());
    repo.restore("latest", target.path(), &["--include", &pattern])
        .assert_ok();
    assert_eq!(
        rel_files(&restored_at(target.path(), src)),
        BTreeSet::from([PathBuf::from("other/d.txt")])
    );

    // Paths that are not in the snapshot, and relative paths.
    let target = tempdir("bulwark-sel-");
    let out = repo.restore(
        &format!("{short}:{}", src.join("nope").display()),
        target.path(),
        &[],
    );
    out.assert_code(1).assert_one_error_line();
    repo.restore(&format!("{short}:../etc"), target.path(), &[])
        .assert_code(1);

    // Bad, short, unknown and ambiguous ids.
    let bad = |spec: &str, hint: &str| {
        let out = repo.restore(spec, target.path(), &[]);
        out.assert_code(1).assert_one_error_line();
        assert!(
            out.stderr.contains(hint),
            "{spec}: expected {hint:?}:\n{}",
            out.describe()
        );
    };
    bad("abc", "8 hex digits");
    bad("zzzzzzzz", "8 hex digits");
    let unknown = if snap.starts_with("deadbeef") {
        "deadbee0"
    } else {
        "deadbeef"
    };
    bad(unknown, "not found");
    // A second object sharing the first 8 digits makes the short id ambiguous.
    let snapshots = repo.path.join("snapshots");
    let twin = format!("{short}{}", "0".repeat(56));
    assert_ne!(twin, snap);
    fs::copy(snapshots.join(&snap), snapshots.join(&twin)).unwrap();
    bad(short, "ambiguous");
    fs::remove_file(snapshots.join(&twin)).unwrap();
    repo.restore(short, &target.path().join("fine"), &[])
        .assert_ok();
}

#[test]
fn ls_lists_a_snapshot_or_a_path_inside_it() {
    let t = selection_tree();
    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[&t.src], &[]));
    let listing = repo.json(&[
        "ls",
        &snap[..8],
        t.src.join("sub").to_str().unwrap(),
        "--json",
    ]);
    let paths: BTreeSet<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = ["a.txt", "b.bin", "deeper", "deeper/c.txt"]
        .iter()
        .map(|p| t.src.join("sub").join(p).display().to_string())
        .collect();
    assert_eq!(paths, want);
    let entry = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("b.bin"))
        .unwrap();
    assert_eq!(entry["type"], "file");
    assert_eq!(entry["size"], 200_000);
    let mode = fs::metadata(t.src.join("sub/b.bin"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(entry["mode"], format!("{mode:o}"));
    let all = repo.json(&["ls", "latest", "--json"]);
    let all: BTreeSet<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    for f in files_below(&t.src) {
        assert!(
            all.contains(&f.display().to_string()),
            "{} missing from ls",
            f.display()
        );
    }
}

#[test]
fn excludes_tags_hosts_times_and_parents() {
    let t = selection_tree();
    let src = &t.src;
    let repo = Repo::init(&[]);
    let first = repo.backup(
        &[src],
        &[
            "--exclude",
            "*.bin",
            "--tag",
            "nightly",
            "--tag",
            "db",
            "--host",
            "alpha",
            "--time",
            "2020-01-02T03:04:05Z",
        ],
    );
    assert_eq!(u64_of(&first, "files_new"), 4, "{first}");
    let target = tempdir("bulwark-excl-");
    repo.restore(&id_of(&first), target.path(), &[]).assert_ok();
    let restored = rel_files(&restored_at(target.path(), src));
    assert!(
        restored.iter().all(|p| p.extension().unwrap() != "bin"),
        "{restored:?}"
    );
    assert_eq!(restored.len(), 4);

    let snaps = repo.snapshots();
    let s = &snaps[0];
    assert_eq!(s["hostname"], "alpha");
    assert_eq!(s["tags"], serde_json::json!(["nightly", "db"]));
    assert_eq!(s["paths"], serde_json::json!([src.display().to_string()]));
    let time = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap();
    assert_eq!(time.timestamp(), 1_577_934_245, "{s}");
    assert!(
        s["time"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-02T03:04:05"),
        "{s}"
    );

    // Offsets survive too, and bad times are usage errors.
    let offset = repo.backup(
        &[src],
        &["--host", "beta", "--time", "2021-06-07T08:09:10+02:00"],
    );
    let listed = repo.snapshots();
    let s = listed.iter().find(|s| id_of(s) == id_of(&offset)).unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        1_623_046_150
    );
    let out = repo.backup_out(&[src], &["--time", "yesterday"]);
    out.assert_code(2).assert_one_error_line();
    assert_eq!(repo.snapshots().len(), 2);

    // Filters.
    let tagged = repo.json(&["snapshots", "--json", "--tag", "nightly"]);
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    let on_beta = repo.json(&["snapshots", "--json", "--host", "beta"]);
    assert_eq!(
        on_beta
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        vec![id_of(&offset)]
    );

    // Parents: found by host and paths, or named.
    let files = files_below(src).len() as u64;
    let beta_again = repo.backup(&[src], &["--host", "beta"]);
    assert_eq!(
        beta_again["parent"].as_str(),
        Some(id_of(&offset).as_str()),
        "{beta_again}"
    );
    assert_eq!(
        u64_of(&beta_again, "files_unmodified"),
        files,
        "{beta_again}"
    );
    let gamma = repo.backup(&[src], &["--host", "gamma"]);
    assert_eq!(
        gamma["parent"],
        Value::Null,
        "no snapshot of host gamma yet: {gamma}"
    );
    assert_eq!(u64_of(&gamma, "files_new"), files, "{gamma}");
    let named = repo.backup(
        &[src],
        &["--host", "delta", "--parent", &id_of(&offset)[..8]],
    );
    assert_eq!(
        named["parent"].as_str(),
        Some(id_of(&offset).as_str()),
        "{named}"
    );
    assert_eq!(u64_of(&named, "files_unmodified"), files, "{named}");
    let count = repo.snapshots().len();
    let out = repo.backup_out(&[src], &["--parent", "0123456789abcdef"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert_eq!(
        repo.snapshots().len(),
        count,
        "a bad --parent saves nothing"
    );
}

#[test]
fn usage_errors_exit_2_and_config_is_reported() {
    let repo = Repo::init(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let config = repo.json(&["cat", "config", "--json"]);
    assert_eq!(config["chunker"]["avg_size"], 65536, "{config}");
    assert_eq!(config["chunker"]["min_size"], 16384, "{config}");
    assert_eq!(config["chunker"]["max_size"], 262144, "{config}");
    assert_eq!(config["chunker"]["seed"], "secret", "{config}");
    assert_eq!(config["pack_size"], 1 << 20, "{config}");

    run(&mut bulwark()).assert_code(2);
    repo.run(&["backup"]).assert_code(2);
    repo.run(&["backup", "/tmp", "--stdin-name", "x"])
        .assert_code(2);
    repo.run(&["check", "--read-data-subset", "0%"])
        .assert_code(2);
    repo.run(&["check", "--read-data-subset", "lots"])
        .assert_code(2);
    repo.run(&["check", "--read-data", "--read-data-subset", "10%"])
        .assert_code(2);
    repo.run(&["restore", "latest", "--target", "/tmp/x", "--include", "["])
        .assert_code(2);
    repo.run(&["backup", "/tmp", "--exclude", "["])
        .assert_code(2);
    let dir = tempdir("bulwark-usage-");
    for bad in [
        &["--chunk-avg-kib", "32"][..],
        &["--chunk-avg-kib", "8192"],
        &["--pack-size-mib", "0"],
    ] {
        let out = run(bulwark()
            .arg("-r")
            .arg(dir.path().join("r"))
            .env("BULWARK_PASSWORD", PASSWORD)
            .arg("init")
            .args(bad));
        out.assert_code(2);
        assert!(!dir.path().join("r").join("config").exists());
    }
    // Backing up a path that does not exist fails and saves nothing.
    let out = repo.backup_out(&[Path::new("/nonexistent/bulwark/path")], &[]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert_eq!(repo.snapshots().len(), 0);
    // --json failures still print one JSON document with the exit code.
    let out = repo.run(&["restore", "abc", "--target", "/tmp/x", "--json"]);
    out.assert_code(1);
    assert_eq!(out.json()["exit_code"], 1);
}

// ---------------------------------------------------------------------------------------------
// The WAL clients a replaying server runs.

/// A restore's WAL socket that gives `answer` to one request, which it returns.
fn one_answer(socket: &Path, answer: impl Into<Vec<u8>>) -> std::thread::JoinHandle<String> {
    let answer = answer.into();
    use std::io::{BufRead, Write};
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut request)
            .unwrap();
        stream.write_all(&answer).unwrap();
        request
    })
}

#[test]
fn both_wal_clients_speak_the_socket_protocol_with_postgres_exit_codes() {
    let dir = tempdir("bulwark-wal-client-");
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_bulwark-wal-fetch"));
    for who in ["bulwark wal-fetch", "bulwark-wal-fetch"] {
        let dest = dir.path().join("RECOVERYXLOG");
        let _ = fs::remove_file(&dest);
        let ask = |socket: &Path| {
            let mut c = if who == "bulwark wal-fetch" {
                let mut c = bulwark();
                c.arg("wal-fetch");
                c
            } else {
                Command::new(&helper)
            };
            c.arg("--socket")
                .arg(socket)
                .arg("000000010000000000000003")
                .arg(&dest);
            run(&mut c)
        };
        // The bytes, whole, at %p.
        let socket = dir.path().join("ok.sock");
        let server = one_answer(&socket, b"OK 5\nhello");
        let out = ask(&socket);
        assert_eq!(out.code, 0, "{who}: {}", out.describe());
        assert_eq!(server.join().unwrap(), "000000010000000000000003\n");
        assert_eq!(fs::read(&dest).unwrap(), b"hello", "{who}");
        fs::remove_file(&socket).unwrap();
        // A file read ahead is moved into place.
        let waiting = dir.path().join("waiting");
        fs::write(&waiting, b"read ahead").unwrap();
        let server = one_answer(&socket, format!("AHEAD {}\n", waiting.display()));
        assert_eq!(ask(&socket).code, 0, "{who}");
        server.join().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"read ahead", "{who}");
        assert!(!waiting.exists(), "{who}: moved, not copied");
        fs::remove_file(&socket).unwrap();
        // Not archived: 1, which PostgreSQL takes for the archive's end.
        let server = one_answer(&socket, b"MISSING\n");
        assert_eq!(ask(&socket).code, 1, "{who}");
        server.join().unwrap();
        fs::remove_file(&socket).unwrap();
        // The restore could not read it, a short answer, no socket: 250, so recovery stops,
        // with one line that says why, and nothing half-written at %p.
        fs::remove_file(&dest).unwrap();
        for (answer, says) in [
            (&b"ERROR pack 1f2e is damaged\n"[..], "pack 1f2e is damaged"),
            (&b"OK 100\nshort"[..], "5 of 100 bytes"),
        ] {
            let server = one_answer(&socket, answer);
            let out = ask(&socket);
            server.join().unwrap();
            assert_eq!(out.code, 250, "{who}: {}", out.describe());
            let line = out.stderr.trim();
            assert!(line.contains(says) && !line.contains('\n'), "{who}: {line}");
            assert!(!dest.exists(), "{who}: nothing at %p");
            fs::remove_file(&socket).unwrap();
        }
        let out = ask(&dir.path().join("gone.sock"));
        assert_eq!(out.code, 250, "{who}: {}", out.describe());
        assert!(out.stderr.contains("gone.sock"), "{who}: {}", out.stderr);
        assert!(fs::read_dir(dir.path()).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains("bulwark-fetch")
        }));
    }
    // The helper's own usage error is an archive error too: never "not archived".
    let out = run(Command::new(&helper).arg("000000010000000000000003"));
    assert_eq!(out.code, 250, "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// Output that cannot be written.

#[test]
fn a_reader_that_stops_early_is_not_an_error_and_a_full_disk_is() {
    let src = tempfile::tempdir().unwrap();
    for i in 0..2000 {
        fs::write(src.path().join(format!("file-{i:04}")), b"x").unwrap();
    }
    let repo = Repo::init(&[]);
    repo.backup(&[src.path()], &[]);
    // `bulwark ls latest | head -1`: the pipe closes before the listing is written.
    let mut child = repo
        .cmd(&["ls", "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = finish(child);
    assert_no_panic(&out);
    out.assert_ok();
    assert!(repo.objects("locks").is_empty(), "the lock was released");
    // Output into a full disk is a failure, said on one line.
    let full = fs::File::create("/dev/full").unwrap();
    let out = finish(
        repo.cmd(&["ls", "latest"])
            .stdout(full)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("cannot write the output"),
        "{}",
        out.describe()
    );
}

#[test]
fn endless_or_huge_secret_files_are_refused_at_once() {
    let repo = Repo::init(&[]);
    for flag in ["--password-file", "--key-file"] {
        let mut c = bulwark();
        c.args(["snapshots", "-r"])
            .arg(&repo.path)
            .args([flag, "/dev/zero"]);
        let out = run(&mut c);
        out.assert_code(1).assert_one_error_line();
        assert!(
            out.stderr.contains("not a password or key file"),
            "{}",
            out.describe()
        );
    }
}
