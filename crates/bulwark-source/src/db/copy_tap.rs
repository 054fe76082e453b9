//! The connection that reads table rows (a dump's, and a verification's read-back), with a tap
//! that takes `COPY` rows off the wire before the driver sees them.
//!
//! PostgreSQL sends a `COPY … TO STDOUT` as one `CopyData` message per row, and tokio-postgres
//! turns each into a `Bytes` handed from its connection task through a stream: on pgbench scale 30
//! (3 M rows) that per-row handling was about 16% of a logical backup's CPU, on a machine whose
//! cores the server's `COPY` also needs. [`TappedStream`] sits between the socket and the driver
//! and reads the server's messages as they arrive. While a copy is open (from `CopyOutResponse`
//! to `CopyDone`, `ErrorResponse` or `ReadyForQuery`), it writes the payload of every `CopyData`
//! to the [`Tap`]'s sink instead of passing it on. Every other message reaches the driver
//! unchanged, so connecting, authentication, errors and the end of each copy stay the driver's
//! business: a copy the server aborts fails in the driver as before.
//!
//! Invariants:
//! - only whole messages are held back, so the driver always reads a valid message sequence;
//! - the sink receives every row byte, in the order the server sent it, before the driver sees
//!   the message that ends the copy: when the driver's copy stream ends, the sink is complete;
//! - rows with no sink open, or a sink that fails, fail the connection's read (and so the
//!   driver's copy): rows are never dropped in silence. [`Tap::close`] reports the sink's error.

use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::Config;
use tokio_postgres::config::Host;

const COPY_OUT_RESPONSE: u8 = b'H';
const COPY_DATA: u8 = b'd';
const COPY_DONE: u8 = b'c';
const ERROR_RESPONSE: u8 = b'E';
const READY_FOR_QUERY: u8 = b'Z';
/// A backend message starts with its type byte and its length (which counts itself, not the type).
const HEADER: usize = 5;
/// One socket read: 3 M rows of 100 bytes take 2,300 reads, not 3 M wake-ups.
const READ_SIZE: usize = 128 * 1024;

/// Where a [`TappedStream`]'s rows go: the sink of the copy in progress, shared with the code that
/// runs the copies.
pub struct Tap<W> {
    state: Arc<Mutex<TapState<W>>>,
}

struct TapState<W> {
    sink: Option<W>,
    failure: Option<String>,
}

impl<W> Clone for Tap<W> {
    fn clone(&self) -> Self {
        Tap {
            state: self.state.clone(),
        }
    }
}

impl<W> Default for Tap<W> {
    fn default() -> Self {
        Tap {
            state: Arc::new(Mutex::new(TapState {
                sink: None,
                failure: None,
            })),
        }
    }
}

impl<W> Tap<W> {
    /// Send the rows of the next copy to `sink`.
    pub fn open(&self, sink: W) {
        self.lock().sink = Some(sink);
    }

    /// The sink back once its copy ended, or why its rows were not all written.
    pub fn close(&self) -> Result<W, String> {
        let mut state = self.lock();
        if let Some(failure) = state.failure.take() {
            return Err(failure);
        }
        state.sink.take().ok_or_else(|| "no copy was open".into())
    }

    /// Why the sink failed, if it did: the cause behind the driver's broken connection.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    fn lock(&self) -> MutexGuard<'_, TapState<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the reader is in the server's message stream.
enum Frame {
    Header { got: usize, bytes: [u8; HEADER] },
    Body { left: usize, to_sink: bool },
}

const NEXT_HEADER: Frame = Frame::Header {
    got: 0,
    bytes: [0; HEADER],
};

/// A connection to the server whose `COPY` rows go to a [`Tap`]; see the module docs.
pub struct TappedStream<S, W> {
    inner: S,
    tap: Tap<W>,
    raw: Box<[u8]>,
    /// Bytes read and parsed, waiting for the driver's next read.
    for_driver: Vec<u8>,
    delivered: usize,
    frame: Frame,
    in_copy: bool,
}

impl<S, W: Write> TappedStream<S, W> {
    pub fn new(inner: S, tap: Tap<W>) -> TappedStream<S, W> {
        TappedStream {
            inner,
            tap,
            raw: vec![0; READ_SIZE].into_boxed_slice(),
            for_driver: Vec::new(),
            delivered: 0,
            frame: NEXT_HEADER,
            in_copy: false,
        }
    }

    /// Sort `data`, the next bytes from the server, between the driver and the sink.
    fn sort(&mut self, data: &[u8]) -> io::Result<()> {
        let TappedStream {
            tap,
            for_driver,
            frame,
            in_copy,
            ..
        } = self;
        let mut state = None;
        let mut at = 0;
        while at < data.len() {
            match frame {
                Frame::Header { got, bytes } => {
                    let n = (HEADER - *got).min(data.len() - at);
                    bytes[*got..*got + n].copy_from_slice(&data[at..at + n]);
                    *got += n;
                    at += n;
                    if *got < HEADER {
                        continue;
                    }
                    let kind = bytes[0];
                    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                    let Some(left) = len.checked_sub(4) else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the server sent a message of length {len}"),
                        ));
                    };
                    let to_sink = kind == COPY_DATA && *in_copy;
                    match kind {
                        COPY_OUT_RESPONSE => *in_copy = true,
                        COPY_DONE | ERROR_RESPONSE | READY_FOR_QUERY => *in_copy = false,
                        _ => {}
                    }
                    if !to_sink {
                        for_driver.extend_from_slice(bytes);
                    }
                    *frame = Frame::Body { left, to_sink };
                }
                Frame::Body { left, to_sink } => {
                    let n = (*left).min(data.len() - at);
                    let part = &data[at..at + n];
                    if *to_sink {
                        let state = state.get_or_insert_with(|| tap.lock());
                        write_rows(state, part)?;
                    } else {
                        for_driver.extend_from_slice(part);
                    }
                    *left -= n;
                    at += n;
                }
            }
            if let Frame::Body { left: 0, .. } = frame {
                *frame = NEXT_HEADER;
            }
        }
        Ok(())
    }
}

fn write_rows<W: Write>(state: &mut TapState<W>, rows: &[u8]) -> io::Result<()> {
    let Some(sink) = state.sink.as_mut() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent table rows while no copy was open",
        ));
    };
    sink.write_all(rows).map_err(|e| {
        let failure = e.to_string();
        state.failure = Some(failure.clone());
        io::Error::new(e.kind(), failure)
    })
}

impl<S: AsyncRead + Unpin, W: Write + Unpin> AsyncRead for TappedStream<S, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let waiting = this.for_driver.len() - this.delivered;
            if waiting > 0 || buf.remaining() == 0 {
                let n = waiting.min(buf.remaining());
                buf.put_slice(&this.for_driver[this.delivered..this.delivered + n]);
                this.delivered += n;
                if this.delivered == this.for_driver.len() {
                    this.for_driver.clear();
                    this.delivered = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut raw = std::mem::take(&mut this.raw);
            let mut read = ReadBuf::new(&mut raw);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let n = read.filled().len();
            let sorted = match polled {
                Poll::Ready(Ok(())) if n > 0 => this.sort(&raw[..n]),
                other => {
                    this.raw = raw;
                    // End of stream, an error, or nothing yet (the waker is registered).
                    return other;
                }
            };
            this.raw = raw;
            sorted?;
        }
    }
}

impl<S: AsyncWrite + Unpin, W: Unpin> AsyncWrite for TappedStream<S, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A socket to the server, of either kind.
pub trait Socket: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Socket for T {}

/// Open a socket to the server `config` names, trying its hosts in order as libpq does: a host
/// that is a directory is a Unix socket's (`DIR/.s.PGSQL.PORT`), a `hostaddr` is used in place
/// of its host's name, and one port may serve every host. A TCP socket gets the configuration's
/// keepalives and user timeout, as the driver's own connect would set them: a server that
/// vanishes mid-copy is noticed, not waited on forever.
pub async fn open_socket(config: &Config) -> io::Result<Box<dyn Socket>> {
    let (hosts, addrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    let count = hosts.len().max(addrs.len());
    let mut failure = io::Error::new(io::ErrorKind::InvalidInput, "no host to connect to");
    for i in 0..count {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let attempt = async {
            let socket: Box<dyn Socket> = match (addrs.get(i), hosts.get(i)) {
                (Some(addr), _) => Box::new(tcp(config, &addr.to_string(), port).await?),
                (None, Some(Host::Tcp(name))) => Box::new(tcp(config, name, port).await?),
                (None, Some(Host::Unix(dir))) => Box::new(unix(dir, port).await?),
                (None, None) => unreachable!("i < the number of hosts or addresses"),
            };
            Ok::<_, io::Error>(socket)
        };
        let opened = match config.get_connect_timeout() {
            Some(limit) => tokio::time::timeout(*limit, attempt)
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
            None => attempt.await,
        };
        match opened {
            Ok(socket) => return Ok(socket),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

async fn tcp(config: &Config, host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let socket = SockRef::from(&stream);
    if let Some(limit) = config.get_tcp_user_timeout() {
        socket.set_tcp_user_timeout(Some(*limit))?;
    }
    if config.get_keepalives() {
        let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
        if let Some(interval) = config.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = config.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    Ok(stream)
}

async fn unix(dir: &Path, port: u16) -> io::Result<UnixStream> {
    UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A server's reply to a copy of three rows, with a notice in the middle of the rows.
    fn conversation() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let rows: [&[u8]; 3] = [b"1\ta\n", b"2\t\\N\n", b"3\tccc\n"];
        let before = [message(b'2', b""), message(b'H', b"\0\0\x02\0\0\0\0")];
        let after = [
            message(b'c', b""),
            message(b'C', b"COPY 3\0"),
            message(b'Z', b"T"),
            // After the copy, CopyData is not a row: it goes to the driver.
            message(b'd', b"stray"),
        ];
        let mut server = Vec::new();
        let mut driver = Vec::new();
        before.iter().for_each(|m| {
            server.extend(m);
            driver.extend(m);
        });
        for (i, row) in rows.iter().enumerate() {
            server.extend(message(b'd', row));
            if i == 1 {
                let notice = message(b'N', b"SNOTICE\0\0");
                server.extend(&notice);
                driver.extend(&notice);
            }
        }
        after.iter().for_each(|m| {
            server.extend(m);
            driver.extend(m);
        });
        (server, driver, rows.concat())
    }

    /// A socket that returns `data` `step` bytes at a time.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self
                .step
                .min(self.data.len() - self.at)
                .min(buf.remaining());
            buf.put_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn read_all<W: Write + Unpin>(server: &[u8], step: usize, tap: Tap<W>) -> io::Result<Vec<u8>> {
        let socket = Trickle {
            data: server.to_vec(),
            at: 0,
            step,
        };
        let mut stream = TappedStream::new(socket, tap);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut seen = Vec::new();
            let mut buf = [0; 7];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(seen);
                }
                seen.extend_from_slice(&buf[..n]);
            }
        })
    }

    #[test]
    fn rows_go_to_the_sink_and_every_other_message_to_the_driver_however_the_bytes_arrive() {
        let (server, driver, rows) = conversation();
        for step in 1..=server.len() {
            let tap = Tap::default();
            tap.open(Vec::new());
            let seen = read_all(&server, step, tap.clone()).unwrap();
            assert_eq!(
                seen, driver,
                "the driver's messages, read {step} bytes at a time"
            );
            assert_eq!(
                tap.close().unwrap(),
                rows,
                "the rows, read {step} bytes at a time"
            );
        }
    }

    #[test]
    fn rows_with_no_copy_open_fail_the_read() {
        let (server, _, _) = conversation();
        let err = read_all(&server, 64, Tap::<Vec<u8>>::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("no copy was open"), "{err}");
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "the disk is full",
            ))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_sink_fails_the_read_and_close_says_why() {
        let (server, _, _) = conversation();
        let tap = Tap::default();
        tap.open(Full);
        let err = read_all(&server, 64, tap.clone()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(tap.failure().as_deref(), Some("the disk is full"));
        assert_eq!(tap.close().err().as_deref(), Some("the disk is full"));
    }

    #[test]
    fn a_tcp_socket_gets_the_configurations_keepalives_and_user_timeout() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let config: Config = format!(
                "host=127.0.0.1 port={port} keepalives_idle=77 keepalives_interval=9 tcp_user_timeout=30"
            )
            .parse()
            .unwrap();
            let stream = tcp(&config, "127.0.0.1", port).await.unwrap();
            let socket = SockRef::from(&stream);
            assert!(socket.keepalive().unwrap());
            assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(77));
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), Duration::from_secs(9));
            assert_eq!(socket.tcp_user_timeout().unwrap(), Some(Duration::from_secs(30)));

            let off: Config = format!("host=127.0.0.1 port={port} keepalives=0").parse().unwrap();
            let stream = tcp(&off, "127.0.0.1", port).await.unwrap();
            assert!(!SockRef::from(&stream).keepalive().unwrap());
        });
    }

    #[test]
    fn a_length_below_four_is_refused() {
        let tap = Tap::default();
        tap.open(Vec::new());
        let err = read_all(b"Z\0\0\0\x02", 64, tap).unwrap_err();
        assert!(err.to_string().contains("length 2"), "{err}");
    }
}
