//! Serving archived WAL to a replaying server: [`FetchService`] answers the server's
//! `restore_command` (`bulwark wal-fetch --socket`) over a Unix socket, and keeps the next
//! segments ready inside `pg_wal`, so that most answers cost the server a rename.
//!
//! Protocol: one connection per file; the request is the file name and a newline; the answer is
//! - `AHEAD <path>\n`: the file waits, whole and read from the archive (decrypted, its hash
//!   checked), at `<path>`, on the filesystem of `pg_wal`; the client renames it to `%p`;
//! - `OK <length>\n` and the bytes;
//! - `MISSING\n`: not in the archive (recovery takes it for the archive's end);
//! - `ERROR <message>\n`.
//!
//! Why ahead: PostgreSQL's startup process waits for each `restore_command` and replays nothing
//! meanwhile, so each millisecond spent reading, decrypting, decompressing and writing a 16 MiB
//! segment on its behalf is a millisecond of redo lost. One thread reads the next [`AHEAD`]
//! segments of the timeline the server is on while it replays. Invariants:
//! - a file appears under its own name in the ahead directory only by a rename once whole, so no
//!   client takes half a file;
//! - a segment is offered as `AHEAD` at most once (the client moves it away); asked for again
//!   (a client that died before its rename), it is read from the archive;
//! - a request for a segment being read ahead waits for that read instead of doing it twice;
//! - segments the server has passed, or of another timeline, are deleted: the server asks for
//!   segments in order and only moves to a newer timeline.
//!
//! Durability: neither path fsyncs the file. PostgreSQL reads a restored segment once from
//! `pg_wal/RECOVERYXLOG` and makes durable itself what it keeps; a restore that a crash
//! interrupts has reported nothing, and is done again into an empty directory.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bulwark_repo::wal::WalArchive;
use bulwark_source::db::physical::Segments;

use crate::error::{Error, Result};

/// How many segments are read ahead of the one the server asked for last (16 MiB each, on disk).
const AHEAD: u64 = 6;

/// A segment: `(timeline, segment number)`.
type Key = (u32, u64);

pub struct FetchService<'a> {
    archive: WalArchive<'a>,
    listener: UnixListener,
    segments: Segments,
    ahead: Ahead,
    stop: AtomicBool,
    /// Files asked for and not in the archive, in order.
    pub missing: Mutex<Vec<String>>,
    pub fetched: AtomicU64,
    pub bytes: AtomicU64,
    /// Files answered from the ahead directory.
    pub fetched_ahead: AtomicU64,
    /// How long the server waited for answers, in all (nanoseconds).
    pub waited_ns: AtomicU64,
}

struct Ahead {
    dir: PathBuf,
    /// The server's account when it is not this process's (root restoring for `postgres`).
    owner: Option<(u32, u32)>,
    state: Mutex<AheadState>,
    changed: Condvar,
}

#[derive(Default)]
struct AheadState {
    /// The segment after the one the server asked for last: reading ahead starts there.
    next: Option<Key>,
    /// Segments waiting in the directory, and their sizes.
    ready: BTreeMap<Key, u64>,
    /// The segment being read ahead now.
    reading: Option<Key>,
    /// The first segment at or after `next` that the archive lacked (or could not give) when
    /// read ahead: nothing is read past it until the server gets there.
    end: Option<Key>,
}

impl AheadState {
    fn wanted(&self, k: Key) -> bool {
        self.next
            .is_some_and(|(tli, from)| k.0 == tli && k.1 >= from && k.1 < from + AHEAD)
    }

    fn to_read(&self) -> Option<Key> {
        let (tli, from) = self.next?;
        (from..from + AHEAD)
            .map(|s| (tli, s))
            .find(|k| !self.ready.contains_key(k) && self.end.is_none_or(|e| *k < e))
    }
}

/// What a request is answered with.
enum Found {
    Ahead(PathBuf, u64),
    Bytes(Vec<u8>),
}

impl<'a> FetchService<'a> {
    /// Listen on `socket`; segments read ahead wait in `ahead_dir` (created here, inside the
    /// restored `pg_wal`, given to `owner`), which is removed when the service is dropped.
    pub fn bind(
        archive: WalArchive<'a>,
        socket: &Path,
        segments: Segments,
        ahead_dir: PathBuf,
        owner: Option<(u32, u32)>,
    ) -> Result<FetchService<'a>> {
        let listener = UnixListener::bind(socket)
            .map_err(|e| Error::io(format!("cannot listen on {}", socket.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot set up the WAL socket", e))?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ahead_dir)
            .and_then(|_| match owner {
                Some((u, g)) => std::os::unix::fs::chown(&ahead_dir, Some(u), Some(g)),
                None => Ok(()),
            })
            .map_err(|e| Error::io(format!("cannot create {}", ahead_dir.display()), e))?;
        Ok(FetchService {
            archive,
            listener,
            segments,
            ahead: Ahead {
                dir: ahead_dir,
                owner,
                state: Mutex::new(AheadState::default()),
                changed: Condvar::new(),
            },
            stop: AtomicBool::new(false),
            missing: Mutex::new(Vec::new()),
            fetched: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            fetched_ahead: AtomicU64::new(0),
            waited_ns: AtomicU64::new(0),
        })
    }

    /// Serve (and read ahead) until [`FetchService::shut`].
    pub fn serve(&self) {
        std::thread::scope(|s| {
            s.spawn(|| self.read_ahead());
            while !self.stop.load(Ordering::Relaxed) {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        let started = Instant::now();
                        if let Err(e) = self.answer(stream) {
                            tracing::warn!("serving WAL to the replay: {e}");
                        }
                        self.waited_ns
                            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        tracing::warn!("the WAL socket failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
    }

    pub fn shut(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.ahead.changed.notify_all();
    }

    fn state(&self) -> MutexGuard<'_, AheadState> {
        self.ahead.state.lock().expect("read-ahead state")
    }

    fn answer(&self, stream: UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut name = String::new();
        BufReader::new(&stream).read_line(&mut name)?;
        let name = name.trim().to_string();
        let mut out = io::BufWriter::new(&stream);
        match self.find(&name) {
            Ok(Some(found)) => {
                self.fetched.fetch_add(1, Ordering::Relaxed);
                match found {
                    Found::Ahead(path, len) => {
                        self.fetched_ahead.fetch_add(1, Ordering::Relaxed);
                        self.bytes.fetch_add(len, Ordering::Relaxed);
                        writeln!(out, "AHEAD {}", path.display())?;
                    }
                    Found::Bytes(data) => {
                        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        writeln!(out, "OK {}", data.len())?;
                        out.write_all(&data)?;
                    }
                }
            }
            Ok(None) => {
                self.missing.lock().expect("missing").push(name.clone());
                out.write_all(b"MISSING\n")?;
            }
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                writeln!(out, "ERROR {msg}")?;
            }
        }
        out.flush()
    }

    /// A file: from the ahead directory, else from the archive. A segment also moves reading
    /// ahead on to the ones after it.
    fn find(&self, name: &str) -> bulwark_repo::Result<Option<Found>> {
        let key = self.segments.parse(name).filter(|_| !name.contains('.'));
        if let Some(key) = key {
            let mut st = self.state();
            while st.reading == Some(key) {
                st = self.ahead.changed.wait(st).expect("read-ahead state");
            }
            let ready = st.ready.remove(&key);
            st.next = Some((key.0, key.1 + 1));
            if st.end.is_some_and(|e| e.0 != key.0 || e.1 <= key.1) {
                st.end = None;
            }
            let passed: Vec<Key> = st
                .ready
                .keys()
                .filter(|k| !st.wanted(**k))
                .copied()
                .collect();
            for k in passed {
                st.ready.remove(&k);
                let _ = fs::remove_file(self.ahead_path(k));
            }
            self.ahead.changed.notify_all();
            drop(st);
            if let Some(len) = ready {
                return Ok(Some(Found::Ahead(self.ahead_path(key), len)));
            }
        }
        Ok(self.archive.fetch(name)?.map(Found::Bytes))
    }

    fn ahead_path(&self, (tli, seg): Key) -> PathBuf {
        self.ahead.dir.join(self.segments.name(tli, seg))
    }

    /// Keep the [`AHEAD`] segments after the server's last request in the ahead directory.
    fn read_ahead(&self) {
        let mut st = self.state();
        while !self.stop.load(Ordering::Relaxed) {
            let Some(key) = st.to_read() else {
                st = self
                    .ahead
                    .changed
                    .wait_timeout(st, Duration::from_millis(100))
                    .expect("read-ahead state")
                    .0;
                continue;
            };
            st.reading = Some(key);
            drop(st);
            let read = self.read_one(key);
            st = self.state();
            st.reading = None;
            match read {
                Ok(Some(len)) if st.wanted(key) => {
                    st.ready.insert(key, len);
                }
                Ok(Some(_)) => {
                    let _ = fs::remove_file(self.ahead_path(key));
                }
                Ok(None) => st.end = Some(key),
                Err(e) => {
                    // The server's own request for it reports the error, if it comes to that.
                    tracing::debug!("reading WAL ahead: {e}");
                    st.end = Some(key);
                }
            }
            self.ahead.changed.notify_all();
        }
    }

    /// Read one segment from the archive into the ahead directory: its size, or `None` when
    /// the archive lacks it.
    fn read_one(&self, key: Key) -> Result<Option<u64>> {
        let name = self.segments.name(key.0, key.1);
        let Some(data) = self.archive.fetch(&name)? else {
            return Ok(None);
        };
        let path = self.ahead_path(key);
        let part = self.ahead.dir.join(format!(".{name}.part"));
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&part)?;
            f.write_all(&data)?;
            if let Some((u, g)) = self.ahead.owner {
                std::os::unix::fs::fchown(&f, Some(u), Some(g))?;
            }
            fs::rename(&part, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&part);
            Error::io(format!("cannot write {}", path.display()), e)
        })?;
        Ok(Some(data.len() as u64))
    }
}

impl Drop for FetchService<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.ahead.dir);
    }
}

/// Fetch WAL file `name` from the service at `socket` into `dest` (through a temporary file and
/// a rename, so a half-written file is never taken for a whole one). `Ok(false)`: not archived.
pub fn fetch_over_socket(socket: &Path, name: &str, dest: &Path) -> Result<bool> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        Error::io(
            format!("cannot reach the restore's WAL socket {}", socket.display()),
            e,
        )
    })?;
    (&stream)
        .write_all(format!("{name}\n").as_bytes())
        .map_err(|e| Error::io("asking for WAL", e))?;
    let mut reader = BufReader::with_capacity(1 << 20, &stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| Error::io("reading the WAL socket", e))?;
    let status = status.trim_end();
    if status == "MISSING" {
        return Ok(false);
    }
    if let Some(msg) = status.strip_prefix("ERROR ") {
        return Err(Error::Invalid(format!(
            "the restore could not fetch {name}: {msg}"
        )));
    }
    if let Some(waiting) = status.strip_prefix("AHEAD ") {
        let waiting = Path::new(waiting);
        fs::rename(waiting, dest)
            .or_else(|e| match e.kind() {
                io::ErrorKind::CrossesDevices => {
                    fs::copy(waiting, dest).and_then(|_| fs::remove_file(waiting))
                }
                _ => Err(e),
            })
            .map_err(|e| Error::io(format!("cannot move {} into place", waiting.display()), e))?;
        return Ok(true);
    }
    let len: u64 = status
        .strip_prefix("OK ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Invalid(format!("the WAL socket answered '{status}'")))?;
    let tmp = dest.with_file_name(format!(
        ".{}.bulwark-fetch",
        dest.file_name().and_then(OsStr::to_str).unwrap_or("wal")
    ));
    let mut write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        let n = io::copy(&mut (&mut reader).take(len), &mut f)?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{n} of {len} bytes"),
            ));
        }
        fs::rename(&tmp, dest)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("cannot write {}", dest.display()), e)
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bulwark_repo::Repository;
    use bulwark_repo::backend::StoreBackend;
    use bulwark_repo::keys::Credential;
    use bulwark_repo::repository::Settings;
    use bulwark_repo::wal::stream_id;

    use super::*;

    fn content(tli: u32, seg: u64) -> Vec<u8> {
        format!("timeline {tli} segment {seg};")
            .repeat(2000)
            .into_bytes()
    }

    /// Poll `done` for up to 10 s.
    fn until(what: &str, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn segments_are_read_ahead_in_order_offered_once_dropped_once_passed_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let (credential, _) = Credential::new_key_file();
        let backend = Arc::new(StoreBackend::local(&dir.path().join("repo"), true).unwrap());
        let repo = Repository::init(backend, &credential, Settings::default()).unwrap();
        let stream = stream_id(&repo, "db", 7);
        let segs = Segments { size: 16 << 20 };
        let archive = WalArchive::new(&repo, stream.clone());
        for seg in 3..12 {
            archive.push(&segs.name(1, seg), &content(1, seg)).unwrap();
        }
        archive.push(&segs.name(2, 9), &content(2, 9)).unwrap();
        archive
            .push(
                "00000002.history",
                b"1\t0/9000000\tno recovery target specified\n",
            )
            .unwrap();

        let pg_wal = dir.path().join("data/pg_wal");
        let ahead = pg_wal.join(".bulwark-ahead");
        let socket = dir.path().join("wal.sock");
        let service = FetchService::bind(
            WalArchive::new(&repo, stream),
            &socket,
            segs,
            ahead.clone(),
            None,
        )
        .unwrap();
        let waiting = || -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&ahead)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        /// Shuts the service down however the test body ends, so a failed assertion fails the
        /// test instead of leaving the scope waiting for the server thread.
        struct ShutOnDrop<'s, 'a>(&'s FetchService<'a>);
        impl Drop for ShutOnDrop<'_, '_> {
            fn drop(&mut self) {
                self.0.shut();
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| service.serve());
            let _shut = ShutOnDrop(&service);
            let get = |name: &str| {
                let dest = pg_wal.join("RECOVERYXLOG");
                let _ = fs::remove_file(&dest);
                fetch_over_socket(&socket, name, &dest)
                    .unwrap()
                    .then(|| fs::read(&dest).unwrap())
            };
            assert_eq!(get(&segs.name(1, 3)), Some(content(1, 3)));
            until("the next segments are read ahead", || {
                waiting() == (4..10).map(|s| segs.name(1, s)).collect::<Vec<_>>()
            });
            for seg in 4..9 {
                assert_eq!(get(&segs.name(1, seg)), Some(content(1, seg)), "{seg}");
                assert!(
                    !waiting().contains(&segs.name(1, seg)),
                    "taken by the client"
                );
            }
            assert_eq!(service.fetched_ahead.load(Ordering::Relaxed), 5);
            // Asked for again (a client that died before its rename): read from the archive.
            assert_eq!(get(&segs.name(1, 8)), Some(content(1, 8)));
            assert_eq!(service.fetched_ahead.load(Ordering::Relaxed), 5);
            // Not a segment: straight from the archive.
            assert!(get("00000002.history").is_some());
            // The server moves to timeline 2: what was read ahead on timeline 1 goes.
            assert_eq!(get(&segs.name(2, 9)), Some(content(2, 9)));
            until("timeline 1's segments are dropped", || {
                waiting().iter().all(|n| n.starts_with("00000002"))
            });
            assert_eq!(get(&segs.name(2, 10)), None, "the archive's end");
            assert_eq!(
                service.missing.lock().unwrap().clone(),
                vec![segs.name(2, 10)]
            );
        });
        assert_eq!(service.fetched.load(Ordering::Relaxed), 9);
        assert!(
            service.waited_ns.load(Ordering::Relaxed) > 0,
            "answers are timed"
        );
        drop(service);
        assert!(!ahead.exists(), "the ahead directory goes with the service");
        assert!(pg_wal.exists());
    }
}
