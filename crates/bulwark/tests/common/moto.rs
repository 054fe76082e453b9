//! moto, the S3-compatible server the object-storage tests run against, on a free loopback port;
//! stopped when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    /// Started and answering; its request log goes to `log` when given (tests that count
    /// requests read it). The port is free when chosen, but another test's server may take it
    /// first: then this one cannot bind it and exits, and a connection alone would reach the
    /// other one. So it is ready only when its own process listens there, and it starts again
    /// on another port if it exits.
    pub fn start(log: Option<&Path>) -> MotoServer {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(match log {
                    Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                    None => Stdio::null(),
                })
                .spawn()
                .expect(
                    "moto_server must be installed (pip install 'moto[server]'); .ci/run installs it",
                );
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if listens(child.id(), port) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return MotoServer { child, port };
                }
                assert!(Instant::now() < deadline, "moto_server did not start");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server exited five times without listening (ports taken?)");
    }
}

/// Whether process `pid` holds a socket listening on loopback TCP `port` (Linux `/proc`).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == "0A";
            let inode = f.get(9)?;
            listening.then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

impl MotoServer {
    /// A repository or bucket location on this server: `path` is `bucket` or `bucket/prefix`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "s3://{path}?region=us-east-1&endpoint=http://127.0.0.1:{}&allow_http=true",
            self.port
        )
    }

    /// One raw HTTP request as any holder of credentials could send it: moto checks that a
    /// request is authenticated (and routes it by the credential scope's `service`), not its
    /// signature. `headers` are whole lines, each ending in CRLF. Returns the status code and
    /// the whole answer, headers and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        service: &str,
        headers: &str,
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
             {headers}Connection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no status line: {resp}"));
        (status, resp)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
