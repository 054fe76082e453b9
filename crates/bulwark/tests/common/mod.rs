//! Shared helpers for the end-to-end tests: running the `bulwark` binary with a clean
//! environment, fresh repositories, deterministic data, and tree snapshots for comparison.
//!
//! Every invocation made through [`run`] asserts that the process did not panic (exit code 101 or
//! "panicked" on stderr): a panic is never an acceptable way for bulwark to fail.

#![allow(dead_code)]

pub mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// Environment variables bulwark reads; cleared for every child so the caller's shell cannot leak in.
const BULWARK_VARS: &[&str] = &[
    "BULWARK_REPO",
    "BULWARK_PASSWORD",
    "BULWARK_PASSWORD_FILE",
    "BULWARK_KEY_FILE",
    "BULWARK_NEW_PASSWORD_FILE",
    "BULWARK_LOG",
];

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bulwark"))
}

/// Whether the long-running variants were asked for.
pub fn thorough() -> bool {
    std::env::var("BULWARK_THOROUGH").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `quick` normally, `full` under BULWARK_THOROUGH=1.
pub fn scale(quick: u32, full: u32) -> u32 {
    if thorough() { full } else { quick }
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A seed from BULWARK_TEST_SEED, or a fresh one; always printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("BULWARK_TEST_SEED") {
        Ok(s) => s.parse().expect("BULWARK_TEST_SEED must be a u64"),
        Err(_) => {
            let mut b = [0u8; 8];
            fs::File::open("/dev/urandom")
                .unwrap()
                .read_exact(&mut b)
                .unwrap();
            u64::from_le_bytes(b)
        }
    };
    eprintln!("{test}: seed {seed} (replay with BULWARK_TEST_SEED={seed})");
    seed
}

/// A plain `bulwark` command with every BULWARK_* variable removed and stdin closed.
pub fn bulwark() -> Command {
    let mut c = Command::new(bin());
    for v in BULWARK_VARS {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Out {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}",
                self.describe()
            )
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    /// The documented shape of a failure: one line on stderr, starting with "error:".
    #[track_caller]
    pub fn assert_one_error_line(&self) -> &Self {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one stderr line:\n{}",
            self.describe()
        );
        assert!(
            lines[0].starts_with("error:"),
            "stderr must start with 'error:':\n{}",
            self.describe()
        );
        self
    }
}

pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[track_caller]
pub fn assert_no_panic(out: &Out) {
    assert_ne!(out.code, 101, "bulwark panicked:\n{}", out.describe());
    assert!(
        !out.stderr.contains("panicked"),
        "bulwark panicked:\n{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("RUST_BACKTRACE"),
        "bulwark panicked:\n{}",
        out.describe()
    );
}

/// How long one bulwark command may take before the test calls it hung. Generous: commands here
/// take seconds even on a loaded machine; this turns a hang into a failure instead of a stuck run.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Run to completion, feeding `stdin` if given. Asserts that bulwark did not panic.
#[track_caller]
pub fn run_with_input(cmd: &mut Command, stdin: Option<&[u8]>) -> Out {
    run_limited(cmd, stdin, WATCHDOG)
}

/// Like [`run_with_input`], but fail the test if the command has not finished after `limit`.
#[track_caller]
pub fn run_limited(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Out {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bulwark");
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // The child may stop reading early (e.g. on an error): a broken pipe is its business.
            let _ = pipe.write_all(&data);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bulwark") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!(
                "bulwark {:?} did not finish within {limit:?} (hung?); stderr so far:\n{err}",
                cmd.get_args()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let out = Out {
        code: exit_code(status),
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    };
    assert_no_panic(&out);
    out
}

#[track_caller]
pub fn run(cmd: &mut Command) -> Out {
    run_with_input(cmd, None)
}

/// Collect a spawned child's output (stdout/stderr must have been piped) and check for panics.
#[track_caller]
pub fn finish(child: Child) -> Out {
    let output = child.wait_with_output().expect("wait for bulwark");
    let out = Out {
        code: exit_code(output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_no_panic(&out);
    out
}

/// Set a path's times without opening it (so FIFOs and devices are safe) and without following a
/// final symlink.
pub fn set_times(path: &Path, atime: (i64, u32), mtime: (i64, u32)) {
    use filetime::FileTime;
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(atime.0, atime.1),
        FileTime::from_unix_time(mtime.0, mtime.1),
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A repository in a temporary directory, opened with a passphrase.
pub struct Repo {
    /// Holds the temporary directory; `path` lies inside it.
    pub dir: TempDir,
    pub path: PathBuf,
    pub password: String,
}

impl Repo {
    /// `bulwark init` a fresh repository with `extra` init options.
    pub fn init(extra: &[&str]) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-repo-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("repo");
        let repo = Repo {
            dir,
            path,
            password: PASSWORD.to_string(),
        };
        let mut args = vec!["init", "--json"];
        args.extend_from_slice(extra);
        let out = repo.run(&args);
        out.assert_ok();
        let v = out.json();
        assert_eq!(
            v["id"].as_str().map(str::len),
            Some(64),
            "init --json prints the id: {v}"
        );
        repo
    }

    /// A command on this repository with the passphrase in BULWARK_PASSWORD.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = bulwark();
        c.arg("-r")
            .arg(&self.path)
            .env("BULWARK_PASSWORD", &self.password);
        c.args(args);
        c
    }

    #[track_caller]
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        run(&mut self.cmd(args))
    }

    /// Run, require exit 0, and parse stdout as JSON (pass `--json` in `args`).
    #[track_caller]
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let out = self.run(args);
        out.assert_ok();
        out.json()
    }

    /// `backup --json` of `paths` with `extra` options; requires exit 0.
    #[track_caller]
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let out = self.backup_out(paths, extra);
        out.assert_ok();
        out.json()
    }

    #[track_caller]
    pub fn backup_out(&self, paths: &[&Path], extra: &[&str]) -> Out {
        let mut args: Vec<OsString> = os(&["backup", "--json"]);
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        args.extend(os(extra));
        self.run(&args)
    }

    /// Every snapshot, as `snapshots --json` lists them.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<Value> {
        match self.json(&["snapshots", "--json"]) {
            Value::Array(a) => a,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }

    /// `restore SPEC --target TARGET --json` plus `extra`.
    #[track_caller]
    pub fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> Out {
        let mut args: Vec<OsString> = os(&["restore", spec, "--json", "--target"]);
        args.push(target.as_os_str().to_owned());
        args.extend(os(extra));
        self.run(&args)
    }

    /// `check --json` with `extra` options: the exit code and the report.
    #[track_caller]
    pub fn check(&self, extra: &[&str]) -> (Out, Value) {
        let mut args = vec!["check", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let v = out.json();
        (out, v)
    }

    /// `check --read-data` must find nothing wrong.
    #[track_caller]
    pub fn assert_clean(&self) {
        let (out, v) = self.check(&["--read-data"]);
        out.assert_ok();
        assert_eq!(v["ok"], Value::Bool(true), "check --read-data: {v}");
        assert_eq!(v["errors"], serde_json::json!([]), "check --read-data: {v}");
        assert_eq!(
            v["damaged_packs"],
            serde_json::json!([]),
            "check --read-data: {v}"
        );
    }

    /// Open through the library, as the CLI does.
    pub fn open_lib(&self) -> bulwark_repo::Repository {
        let backend = bulwark_repo::StoreBackend::local(&self.path, false).expect("backend");
        bulwark_repo::Repository::open(
            Arc::new(backend),
            &bulwark_repo::Credential::Passphrase(self.password.clone()),
        )
        .expect("open repository")
    }

    /// The objects of one folder: name -> size (only well-formed 64-hex names).
    pub fn objects(&self, folder: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for path in files_below(&self.path.join(folder)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if is_hex64(&name) {
                out.insert(name, fs::metadata(&path).unwrap().len());
            }
        }
        out
    }

    pub fn pack_path(&self, name: &str) -> PathBuf {
        self.path.join("data").join(&name[..2]).join(name)
    }
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Every regular file below `dir` (none when it does not exist).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Where a restore of absolute `source` into `target` puts it.
pub fn restored_at(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute source path"))
}

pub fn id_of(v: &Value) -> String {
    v["snapshot_id"]
        .as_str()
        .or_else(|| v["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

pub fn u64_of(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric {field} in {v}"))
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Deterministic data.

/// SplitMix64: small, fast enough in debug builds, and reproducible from a seed.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }

    /// Text-like data that compresses to roughly a third: random words from a small vocabulary.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&[u8]] = &[
            b"backup ",
            b"restore ",
            b"snapshot ",
            b"pack ",
            b"index ",
            b"chunk ",
            b"tree ",
            b"blob ",
            b"the ",
            b"of ",
            b"and ",
            b"repository ",
            b"key ",
            b"lock ",
            b"verify ",
            b"data\n",
        ];
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            let r = self.next_u64();
            for i in 0..8 {
                v.extend_from_slice(WORDS[((r >> (i * 4)) & 15) as usize]);
            }
            v.extend_from_slice(format!("{:x} ", r >> 40).as_bytes());
        }
        v.truncate(len);
        v
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Trees on disk, for comparison.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Other,
}

/// Everything about one file system entry that a restore must reproduce.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    /// BLAKE3 of the content, for regular files.
    pub hash: Option<String>,
    pub link: Option<OsString>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} mode {:o} owner {}:{} mtime {}.{:09} size {}",
            self.kind, self.mode, self.uid, self.gid, self.mtime.0, self.mtime.1, self.size
        )?;
        if let Some(h) = &self.hash {
            write!(f, " blake3 {}", &h[..16])?;
        }
        if let Some(l) = &self.link {
            write!(f, " -> {l:?}")?;
        }
        Ok(())
    }
}

/// Describe `path` (not following a symlink).
pub fn describe(path: &Path) -> Entry {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = m.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Other
    };
    Entry {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
        size: if kind == Kind::File { m.len() } else { 0 },
        hash: (kind == Kind::File).then(|| {
            let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            blake3::hash(&data).to_hex().to_string()
        }),
        link: (kind == Kind::Symlink).then(|| fs::read_link(path).unwrap().into_os_string()),
    }
}

/// Every entry at and below `root`, keyed by path relative to it ("" for the root itself).
pub fn scan(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let e = describe(&abs);
        if e.kind == Kind::Dir {
            for child in fs::read_dir(&abs).unwrap() {
                stack.push(rel.join(child.unwrap().file_name()));
            }
        }
        out.insert(rel, e);
    }
    out
}

/// Which parts of [`Entry`] a comparison looks at.
#[derive(Clone, Copy)]
pub struct Compare {
    pub metadata: bool,
    pub owners: bool,
}

impl Compare {
    pub const ALL: Compare = Compare {
        metadata: true,
        owners: true,
    };
    pub const CONTENT: Compare = Compare {
        metadata: false,
        owners: false,
    };
}

fn masked(e: &Entry, c: Compare) -> Entry {
    let mut e = e.clone();
    if !c.owners || !c.metadata {
        (e.uid, e.gid) = (0, 0);
    }
    if !c.metadata {
        e.mode = 0;
        e.mtime = (0, 0);
    }
    e
}

/// Assert that the trees at `expected` and `actual` hold the same entries with the same content
/// and, per `c`, the same metadata. Lists every difference on failure.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path, c: Compare) {
    let want = scan(expected);
    let got = scan(actual);
    assert_same_entries(
        &want,
        &got,
        c,
        &format!("{} vs {}", expected.display(), actual.display()),
    );
}

#[track_caller]
pub fn assert_same_entries(
    want: &BTreeMap<PathBuf, Entry>,
    got: &BTreeMap<PathBuf, Entry>,
    c: Compare,
    what: &str,
) {
    let mut problems = Vec::new();
    let keys: BTreeSet<&PathBuf> = want.keys().chain(got.keys()).collect();
    for k in keys {
        match (want.get(k), got.get(k)) {
            (Some(_), None) => problems.push(format!("missing from restore: {k:?}")),
            (None, Some(_)) => problems.push(format!("unexpected in restore: {k:?}")),
            (Some(w), Some(g)) => {
                let (w, g) = (masked(w, c), masked(g, c));
                if w != g {
                    problems.push(format!(
                        "{k:?} differs:\n    source:   {w:?}\n    restored: {g:?}"
                    ));
                }
            }
            (None, None) => unreachable!(),
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(30);
        panic!("{what}: {n} differences:\n  {}", problems.join("\n  "));
    }
}

/// Make `path` and everything below it world-accessible (for running bulwark as another user).
pub fn chmod_tree_open(path: &Path) {
    let m = fs::symlink_metadata(path).unwrap();
    if m.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
        for e in fs::read_dir(path).unwrap() {
            chmod_tree_open(&e.unwrap().path());
        }
    } else if m.is_file() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
    }
}

/// Flip one bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

/// A temporary directory with a recognisable prefix.
pub fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL servers for tests: a real cluster made with initdb and started with pg_ctl, run as
// an unprivileged account when the tests run as root (initdb and postgres refuse root), listening
// on a free loopback port and on a private socket. Stopped and removed on drop.

/// The PostgreSQL programs: BULWARK_PG_BINDIR, else `pg_config --bindir`.
pub fn pg_bindir() -> PathBuf {
    if let Some(d) = std::env::var_os("BULWARK_PG_BINDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config (install PostgreSQL)");
    assert!(out.status.success(), "pg_config --bindir failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// (uid, gid) of the account clusters run as: BULWARK_SCRATCH_USER or `postgres` when root.
pub fn pg_run_as() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    let name = std::env::var("BULWARK_SCRATCH_USER").unwrap_or_else(|_| "postgres".into());
    let c = std::ffi::CString::new(name.clone()).unwrap();
    // SAFETY: getpwnam returns null or a pointer to static storage, read at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    assert!(
        !pw.is_null(),
        "tests run as root need an unprivileged '{name}' account for PostgreSQL"
    );
    // SAFETY: pw is non-null.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    pub bindir: PathBuf,
    run_as: Option<(u32, u32)>,
    running: bool,
}

impl PgServer {
    /// initdb and start a cluster on a free loopback port; superuser `postgres`, trust auth.
    pub fn start() -> PgServer {
        PgServer::start_with("")
    }

    /// Like [`PgServer::start`], with more `postgresql.conf` lines.
    pub fn start_with(extra_conf: &str) -> PgServer {
        let bindir = pg_bindir();
        let run_as = pg_run_as();
        let dir = tempfile::Builder::new()
            .prefix("bulwark-pgtest-")
            .tempdir()
            .unwrap()
            .keep();
        fs::create_dir(dir.join("sock")).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(dir.join("sock"), Some(uid), Some(gid)).unwrap();
        }
        let mut server = PgServer {
            dir,
            port: 0,
            bindir,
            run_as,
            running: false,
        };
        let out = server
            .cmd("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = fs::read_to_string(server.dir.join("data/postgresql.conf")).unwrap();
        conf += &format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\n",
            server.dir.join("sock").display()
        );
        conf += extra_conf;
        fs::write(server.dir.join("data/postgresql.conf"), conf).unwrap();
        server.launch();
        server
    }

    /// A cluster on a copy of the data directory `data` (a restored one), with more
    /// `postgresql.conf` lines.
    pub fn start_from(data: &Path, extra_conf: &str) -> PgServer {
        let bindir = pg_bindir();
        let run_as = pg_run_as();
        let dir = tempfile::Builder::new()
            .prefix("bulwark-pgtest-")
            .tempdir()
            .unwrap()
            .keep();
        fs::create_dir(dir.join("sock")).unwrap();
        let out = Command::new("cp")
            .arg("-a")
            .arg(data)
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf_path = dir.join("data/postgresql.conf");
        let mut conf = fs::read_to_string(&conf_path).unwrap_or_default();
        conf += &format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n{extra_conf}",
            dir.join("sock").display()
        );
        fs::write(&conf_path, conf).unwrap();
        if let Some((uid, gid)) = run_as {
            let out = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir)
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let mut server = PgServer {
            dir,
            port: 0,
            bindir,
            run_as,
            running: false,
        };
        server.launch();
        server
    }

    /// pg_ctl start on a free port.
    fn launch(&mut self) {
        // A port can be taken between choosing and binding it: try a few.
        for _ in 0..5 {
            self.port = free_port();
            let out = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .arg("-o")
                .arg(format!("-p {}", self.port))
                .args(["-w", "-t", "60", "start"])
                .output()
                .unwrap();
            if out.status.success() {
                self.running = true;
                return;
            }
        }
        panic!(
            "pg_ctl start failed: {}",
            fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    fn cmd(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(self.bindir.join(program));
        c.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// A URL for database `db` over TCP.
    pub fn dsn(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Run SQL with psql (as root is fine: psql is a client); panics on error; returns `-At` output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.dsn(db))
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Restart the server on the same port (`pg_ctl restart -m fast`): every connection drops.
    pub fn restart(&self) {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A command for one of the server's programs, run as the server's account.
    pub fn program(&self, name: &str) -> Command {
        self.cmd(name)
    }

    /// Stop at once, as a crash would.
    pub fn stop_immediate(&mut self) {
        if self.running {
            self.running = false;
            let _ = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_immediate();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The embedded default (`examples/bulwark.toml` and its sample data) in a fresh directory, its
/// state under `state/`.
pub struct Site {
    pub _dir: TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

/// A [`Site`] with `extra` appended to its policy file, its repositories and ledger created.
pub fn site(extra: &str) -> Site {
    let s = bare_site(extra);
    s.run(&["init"]).assert_ok();
    s
}

/// As [`site`], but nothing created yet.
pub fn bare_site(extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = Command::new("cp")
        .arg("-a")
        .arg(examples.join("sample"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    fs::copy(
        examples.join("demo.passphrase"),
        root.join("demo.passphrase"),
    )
    .unwrap();
    let text = fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/");
    let config = root.join("bulwark.toml");
    fs::write(&config, format!("{text}\n{extra}")).unwrap();
    Site {
        _dir: dir,
        root,
        config,
    }
}

impl Site {
    /// `bulwark ARGS -c POLICY`.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Out {
        let mut c = bulwark();
        c.args(args).arg("-c").arg(&self.config);
        run(&mut c)
    }

    pub fn status(&self, at: Option<&str>) -> Value {
        let mut args = vec!["status", "--json"];
        if let Some(t) = at {
            args.extend(["--at", t]);
        }
        self.run(&args).json()
    }

    pub fn repo(&self, name: &str) -> PathBuf {
        self.root.join("state").join(name)
    }

    /// Every ledger event.
    pub fn events(&self) -> Vec<Value> {
        match self.run(&["ledger", "events", "--json"]).json() {
            Value::Array(a) => a,
            other => panic!("ledger events --json is not an array: {other}"),
        }
    }

    /// The snapshots of repository `name` of the site.
    pub fn snapshots(&self, name: &str) -> Vec<Value> {
        let mut c = bulwark();
        c.args(["snapshots", "--json", "-r"])
            .arg(self.repo(name))
            .env("BULWARK_PASSWORD_FILE", self.root.join("demo.passphrase"));
        match run(&mut c).json() {
            Value::Array(a) => a,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }
}
