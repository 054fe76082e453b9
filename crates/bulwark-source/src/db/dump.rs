//! A database dump as a byte stream: a producer thread writes the dump (from the dump program
//! and the snapshot connection it owns) into a bounded channel of chunks, and the backup reads
//! it like a file. Nothing is staged on disk.
//!
//! A dump is complete only when its producer returned `Ok` *and* it ends with [`DUMP_TRAILER`]:
//! an error anywhere is an error of the stream, and a stream that ends without the producer's
//! word is reported as cut short, so a partial dump is never stored as complete.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{DbError, DbResult};

/// The last line of every complete dump bulwark writes (an SQL comment in both dialects).
pub const DUMP_TRAILER: &str = "-- bulwark: dump complete\n";

enum Msg {
    Data(Vec<u8>),
    Done,
    Failed(String),
}

/// The dump as a byte stream; see the module docs.
pub struct DumpReader {
    rx: Receiver<Msg>,
    buf: Vec<u8>,
    pos: usize,
    state: Result<bool, String>,
    _thread: Option<JoinHandle<()>>,
}

impl DumpReader {
    /// Run `produce` on a thread named `name`; what it writes is what this stream reads.
    pub fn spawn(
        name: &str,
        produce: impl FnOnce(&mut ChunkSender) -> Result<(), String> + Send + 'static,
    ) -> DumpReader {
        // 16 MiB in flight: the producer goes on while the backup compresses a window.
        let (tx, rx) = sync_channel::<Msg>(64);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut out = ChunkSender {
                    tx: tx.clone(),
                    buf: Vec::with_capacity(CHUNK),
                };
                let _ = match produce(&mut out) {
                    Ok(()) => tx.send(Msg::Done),
                    Err(e) => tx.send(Msg::Failed(e)),
                };
            })
            .expect("spawn the dump thread");
        DumpReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            state: Ok(false),
            _thread: Some(thread),
        }
    }
}

impl Read for DumpReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match &self.state {
                Ok(true) => return Ok(0),
                Err(e) => return Err(io::Error::other(e.clone())),
                Ok(false) => {}
            }
            match self.rx.recv() {
                Ok(Msg::Data(b)) => (self.buf, self.pos) = (b, 0),
                Ok(Msg::Done) => self.state = Ok(true),
                Ok(Msg::Failed(e)) => self.state = Err(e),
                Err(_) => {
                    self.state =
                        Err("the dump stopped without finishing (its producer ended)".into())
                }
            }
        }
    }
}

const CHUNK: usize = 256 * 1024;

/// The producer's end of a [`DumpReader`]: buffered writes, sent in chunks. A write fails with
/// `BrokenPipe` once the reader is gone (the backup stopped).
pub struct ChunkSender {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
}

impl ChunkSender {
    /// A second sender into the same stream, for a writer that must own one. This one is flushed
    /// first; what the two write stays in order as long as each flushes before the other writes.
    pub fn fork(&mut self) -> io::Result<ChunkSender> {
        self.flush()?;
        Ok(ChunkSender {
            tx: self.tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.send(Msg::Data(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the backup stopped reading the dump",
            )
        })
    }
}

/// Read `r` to its end on a thread (a child's stderr, so that it can never fill and block it).
pub fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Whether a dump's end is [`DUMP_TRAILER`]; otherwise the last line found, for the message.
pub fn check_trailer(path: &Path) -> DbResult<Result<(), String>> {
    let mut f =
        File::open(path).map_err(|e| DbError(format!("cannot open {}: {e}", path.display())))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let tail_len = len.min(4096);
    f.seek(io::SeekFrom::Start(len - tail_len))
        .map_err(|e| DbError(format!("cannot read {}: {e}", path.display())))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)
        .map_err(|e| DbError(format!("cannot read {}: {e}", path.display())))?;
    if tail.ends_with(DUMP_TRAILER.as_bytes()) {
        return Ok(Ok(()));
    }
    let text = String::from_utf8_lossy(&tail);
    let last: String = text.lines().last().unwrap_or("").chars().take(80).collect();
    Ok(Err(format!(
        "the dump ({len} bytes) does not end with bulwark's completion line: it was cut short (it ends with {last:?})"
    )))
}
