//! Read a stream ahead on a thread of its own, so whoever writes it (a child process, the server
//! behind it) keeps going while the reader is busy with what came before.
//!
//! A backup reads a window of data, then chunks, hashes, compresses and encrypts it on every
//! core; read directly from a pipe, the producer stalls the whole time (the pipe holds 64 KiB)
//! and the cores idle while the next window trickles in. Here a thread keeps up to
//! `BLOCKS` blocks of `BLOCK` bytes in flight. Blocks are handed back once read, so a
//! long stream reuses the same memory instead of faulting in fresh pages for every block.
//!
//! The stream's end and its errors arrive in order after the data before them: a read error is
//! returned where it happened, never swallowed, and the end of the stream is reported only
//! after the producer closed it.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes per block handed from the reading thread.
const BLOCK: usize = 1 << 20;
/// Blocks in flight at most: the memory the read-ahead may hold.
const BLOCKS: usize = 16;

/// The consuming end; reads what the thread read, in order.
pub struct ReadAhead {
    blocks: Receiver<io::Result<Vec<u8>>>,
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ReadAhead {
    /// Start reading `source` on a thread named `name`.
    pub fn spawn(name: &str, mut source: impl Read + Send + 'static) -> io::Result<ReadAhead> {
        let (tx, blocks) = sync_channel::<io::Result<Vec<u8>>>(BLOCKS);
        let (spent, recycled) = sync_channel::<Vec<u8>>(BLOCKS + 2);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    let mut block = recycled
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
                    block.clear();
                    let sent = match (&mut source).take(BLOCK as u64).read_to_end(&mut block) {
                        Ok(0) => return,
                        Ok(_) => tx.send(Ok(block)),
                        Err(e) => {
                            // What came before the error is read first, then the error.
                            if !block.is_empty() {
                                let _ = tx.send(Ok(block));
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    // The reader went away: nobody wants the rest.
                    if sent.is_err() {
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            blocks,
            spent,
            current: Vec::new(),
            pos: 0,
            ended: false,
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) => {
                    let old = std::mem::replace(&mut self.current, block);
                    self.pos = 0;
                    // A full return queue only means the thread has blocks enough.
                    let _ = self.spent.try_send(old);
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                // The thread ended after the last block: the end of the stream.
                Err(_) => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn reads_the_stream_whole_and_in_order_across_blocks() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12_345] {
            let data = pattern(len);
            let mut got = Vec::new();
            ReadAhead::spawn("test", io::Cursor::new(data.clone()))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got.len(), len);
            assert!(got == data, "{len} bytes differ");
        }
    }

    /// A source that yields `good` bytes, then fails.
    struct Failing {
        good: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::other("the pipe broke"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(1);
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn an_error_comes_after_the_data_before_it_and_is_not_an_end() {
        let mut r = ReadAhead::spawn("test", Failing { good: BLOCK + 10 }).unwrap();
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(e.to_string(), "the pipe broke");
        // read_to_end keeps what it read before the error: every byte the source gave.
        assert_eq!(got.len(), BLOCK + 10);
        assert!(got.iter().all(|&b| b == 1));
    }

    #[test]
    fn dropping_the_reader_stops_the_thread_even_mid_stream() {
        /// An endless source that says when the thread let go of it.
        struct Endless(std::sync::mpsc::Sender<()>);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(0);
                Ok(buf.len())
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (tx, released) = std::sync::mpsc::channel();
        let mut r = ReadAhead::spawn("test", Endless(tx)).unwrap();
        let mut some = vec![0u8; 3 * BLOCK];
        r.read_exact(&mut some).unwrap();
        drop(r);
        released
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the reading thread let go of its source");
    }
}
