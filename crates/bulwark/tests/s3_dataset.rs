//! `kind = "s3"` datasets against a real S3-compatible server (moto) on loopback: a prefix with
//! metadata, nested prefixes, an empty object, a multipart object, a key that is also a prefix
//! and an excluded key is backed up by `run` (and restore-tested); objects are changed, deleted
//! and added; the second backup reads only those; the first snapshot restored into another
//! bucket is the first state, metadata included, and into a directory as files. A missing
//! bucket or an unreachable endpoint is one clear error and stores no snapshot.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::moto::MotoServer;
use common::{Out, run};
use serde_json::Value;

struct Moto {
    server: MotoServer,
    log: PathBuf,
}

/// A response: status, headers (names lower case), body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl std::ops::Deref for Moto {
    type Target = MotoServer;
    fn deref(&self) -> &MotoServer {
        &self.server
    }
}

impl Moto {
    fn start(log: &Path) -> Moto {
        let server = MotoServer::start(Some(log));
        Moto {
            server,
            log: log.to_path_buf(),
        }
    }

    /// One plain HTTP request. moto checks no signature, but wants an Authorization header.
    fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Connection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        head += "\r\n";
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let text = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = text.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t == "chunked")
        {
            let mut out = Vec::new();
            let mut rest = &body[..];
            loop {
                let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let n =
                    usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                        .unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
                rest = &rest[eol + 4 + n..];
            }
            body = out;
        }
        Response {
            status,
            headers,
            body,
        }
    }

    fn create_bucket(&self, bucket: &str) {
        assert_eq!(
            self.http("PUT", &format!("/{bucket}"), &[], b"").status,
            200
        );
    }

    fn put(&self, bucket: &str, key: &str, headers: &[(&str, &str)], body: &[u8]) {
        let r = self.http("PUT", &format!("/{bucket}/{key}"), headers, body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// An upload in parts of 5 MiB (moto's least), as large objects usually arrive.
    fn put_multipart(&self, bucket: &str, key: &str, headers: &[(&str, &str)], body: &[u8]) {
        let path = format!("/{bucket}/{key}");
        let r = self.http("POST", &format!("{path}?uploads"), headers, b"");
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let upload = between(&text, "<UploadId>", "</UploadId>");
        let mut done = String::from("<CompleteMultipartUpload>");
        for (n, part) in body.chunks(5 << 20).enumerate() {
            let r = self.http(
                "PUT",
                &format!("{path}?partNumber={}&uploadId={upload}", n + 1),
                &[],
                part,
            );
            assert_eq!(r.status, 200);
            done += &format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                n + 1,
                r.headers["etag"]
            );
        }
        done += "</CompleteMultipartUpload>";
        let r = self.http(
            "POST",
            &format!("{path}?uploadId={upload}"),
            &[],
            done.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    fn delete(&self, bucket: &str, key: &str) {
        assert_eq!(
            self.http("DELETE", &format!("/{bucket}/{key}"), &[], b"")
                .status,
            204
        );
    }

    fn get(&self, bucket: &str, key: &str) -> Response {
        let r = self.http("GET", &format!("/{bucket}/{key}"), &[], b"");
        assert_eq!(r.status, 200, "GET {bucket}/{key}");
        r
    }

    /// Every key under `prefix/`, relative to it.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let r = self.http(
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}/"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let mut out: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .map(|k| k.split("</Key>").next().unwrap())
            .map(|k| k.strip_prefix(&format!("{prefix}/")).unwrap().to_string())
            .collect();
        out.sort();
        out
    }

    fn url(&self, bucket_and_prefix: &str) -> String {
        url_at(self.port, bucket_and_prefix)
    }

    /// Object GETs the server has logged for keys starting with `path` (`/bucket/prefix/...`).
    fn object_gets(&self, path: &str) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300)); // the server logs after it answers
        let needle = format!("\"GET {path}");
        let mut out: Vec<String> = std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
            .filter(|rest| !rest.starts_with('?'))
            .map(|rest| rest.split(' ').next().unwrap().to_string())
            // The marker `photos/` is listed as `photos`, which a GET does not find.
            .filter(|key| key != "photos")
            .collect();
        out.sort();
        out
    }
}

fn url_at(port: u16, bucket_and_prefix: &str) -> String {
    format!(
        "s3://{bucket_and_prefix}?region=us-east-1&endpoint=http://127.0.0.1:{port}&allow_http=true"
    )
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split(start).nth(1).unwrap().split(end).next().unwrap()
}

fn bulwark(args: &[&str]) -> Out {
    run(common::bulwark()
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing-secret-never-shown")
        .env("BULWARK_PASSWORD", common::PASSWORD))
}

/// The headers a restore must bring back.
const KEPT: [&str; 5] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-language",
    "content-encoding",
];

/// What a GET says about an object: its body and the headers a restore keeps.
fn state(r: &Response) -> (Vec<u8>, BTreeMap<String, String>) {
    let kept = r
        .headers
        .iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()) || k.starts_with("x-amz-meta-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (r.body.clone(), kept)
}

fn policy(dir: &Path, url: &str) -> PathBuf {
    let config = dir.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.primary]\nurl = \"{repo}\"\n\n[datasets.media]\nkind = \"s3\"\nurl = \"{url}\"\nexclude = [\"*.tmp\"]\nschedule = \"daily at 02:00\"\n",
            repo = dir.join("repo").display(),
        ),
    )
    .unwrap();
    config
}

fn steps(report: &Value) -> Vec<(String, bool)> {
    report["datasets"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["ok"].as_bool().unwrap(),
            )
        })
        .filter(|(step, _)| step != "forget")
        .collect()
}

/// The dataset's snapshots, oldest first (the repository also holds the ledger's copies).
fn media_snapshots(repo: &str) -> Vec<Value> {
    let all = bulwark(&["snapshots", "-r", repo, "--json"]).json();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["dataset"] == "media")
        .cloned()
        .collect()
}

#[test]
fn a_bucket_is_backed_up_deduplicated_and_restored_into_another_bucket_with_its_metadata() {
    let dir = common::tempdir("s3-dataset");
    let moto = Moto::start(&dir.path().join("moto.log"));
    for b in ["media", "restored"] {
        moto.create_bucket(b);
    }
    let mut rng = common::Prng::new(common::seed("s3-dataset"));
    let big = rng.bytes((common::scale(12, 40) as usize) << 20);
    let photo = rng.bytes(300_000);
    moto.put(
        "media",
        "eu/photos/2026/a.jpg",
        &[
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-owner", "alice"),
            ("x-amz-meta-camera", "x100"),
        ],
        &photo,
    );
    moto.put("media", "eu/photos/2026/b.jpg", &[], b"second photo");
    moto.put(
        "media",
        "eu/docs/deep/nested/c.pdf",
        &[
            ("Content-Type", "application/pdf"),
            ("Cache-Control", "no-cache"),
            ("Content-Disposition", "attachment; filename=\"c.pdf\""),
            ("Content-Language", "de"),
        ],
        b"%PDF-1.7 pretend",
    );
    moto.put(
        "media",
        "eu/empty.txt",
        &[("Content-Type", "text/plain")],
        b"",
    );
    // A key that is also a prefix of other keys cannot be a file beside its directory.
    moto.put("media", "eu/notes", &[], b"the notes object");
    moto.put("media", "eu/notes/today.txt", &[], b"today");
    moto.put("media", "eu/scratch/x.tmp", &[], b"excluded");
    // A console's "folder" marker: no content, left out and listed as unreadable.
    moto.put("media", "eu/photos/", &[], b"");
    moto.put("media", "other/outside.txt", &[], b"not in the prefix");
    moto.put_multipart(
        "media",
        "eu/big.bin",
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-amz-meta-kind", "large"),
        ],
        &big,
    );
    let first_keys = [
        "big.bin",
        "docs/deep/nested/c.pdf",
        "empty.txt",
        "notes",
        "notes/today.txt",
        "photos/2026/a.jpg",
        "photos/2026/b.jpg",
    ];
    let first: BTreeMap<&str, _> = first_keys
        .iter()
        .map(|k| (*k, state(&moto.get("media", &format!("eu/{k}")))))
        .collect();
    assert!(
        moto.get("media", "eu/big.bin").headers["etag"].contains('-'),
        "the large object is a multipart one"
    );

    let config = policy(dir.path(), &moto.url("media/eu"));
    let cfg = config.to_str().unwrap();
    let gets_before = moto.object_gets("/media/eu/").len();
    let out = bulwark(&["run", "-c", cfg, "--init", "--json", "media"]);
    out.assert_ok();
    let report = out.json();
    assert_eq!(
        steps(&report),
        [
            ("backup".to_string(), true),
            ("restore test".to_string(), true)
        ],
        "{report}"
    );
    assert!(!out.stdout.contains("testing-secret") && !out.stderr.contains("testing-secret"));
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let snapshots = media_snapshots(repo);
    let s1 = common::id_of(&snapshots[0]);
    assert_eq!(snapshots[0]["dataset"], "media");
    assert_eq!(snapshots[0]["summary"]["total_files"], 7, "{snapshots:?}");
    assert_eq!(
        snapshots[0]["summary"]["files_unreadable"], 1,
        "the marker: {snapshots:?}"
    );
    let gets_first = moto.object_gets("/media/eu/");
    assert_eq!(
        gets_first.len() - gets_before,
        7,
        "each object read once: {gets_first:?}"
    );

    // The restore test proved the fingerprint.
    let events = bulwark(&["ledger", "events", "-c", cfg, "--json"]).json();
    let test = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "restore_test")
        .unwrap_or_else(|| panic!("no restore test event: {events}"));
    let text = test.to_string();
    assert!(
        text.contains("fingerprint") && text.contains("\"s3\""),
        "{text}"
    );

    // Behind the backup's back: one changed, one deleted, one added.
    moto.put(
        "media",
        "eu/photos/2026/b.jpg",
        &[("x-amz-meta-edited", "yes")],
        b"second photo, edited",
    );
    moto.delete("media", "eu/empty.txt");
    moto.put(
        "media",
        "eu/photos/2026/new.jpg",
        &[("Content-Type", "image/jpeg")],
        b"new",
    );
    let before = moto.object_gets("/media/eu/");
    let out = bulwark(&["run", "-c", cfg, "--json", "media"]);
    out.assert_ok();
    let second = out.json();
    assert_eq!(second["datasets"][0]["steps"][0]["ok"], true, "{second}");
    // Only what changed was read: the edited and the new object, each once.
    let mut read: BTreeMap<String, i64> = BTreeMap::new();
    for k in moto.object_gets("/media/eu/") {
        *read.entry(k).or_default() += 1;
    }
    for k in before {
        *read.entry(k).or_default() -= 1;
    }
    read.retain(|_, n| *n != 0);
    assert_eq!(
        read,
        BTreeMap::from([
            ("photos/2026/b.jpg".to_string(), 1),
            ("photos/2026/new.jpg".to_string(), 1)
        ])
    );
    let snapshots = media_snapshots(repo);
    let latest = snapshots.last().unwrap();
    let summary = &latest["summary"];
    assert_eq!(
        (
            &summary["files_new"],
            &summary["files_changed"],
            &summary["files_unmodified"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(5)),
        "{summary}"
    );
    assert!(
        summary["bytes_added"].as_u64().unwrap() < 1 << 20,
        "the large object is not stored again: {summary}"
    );

    // The first snapshot into another bucket: the first state, metadata included.
    let target = moto.url("restored/copy");
    let out = bulwark(&[
        "restore",
        &s1,
        "-r",
        repo,
        "--to-bucket",
        &target,
        "--verify",
        "--json",
    ]);
    out.assert_ok();
    let r = out.json();
    assert_eq!(
        (&r["objects"], &r["verified"]),
        (&Value::from(7), &Value::Bool(true)),
        "{r}"
    );
    assert_eq!(moto.keys("restored", "copy"), first_keys);
    for (k, want) in &first {
        let got = state(&moto.get("restored", &format!("copy/{k}")));
        assert_eq!(&got.1, &want.1, "{k}: headers");
        assert!(got.0 == want.0, "{k}: content differs");
    }

    // Again, keeping what is there: nothing is written.
    let out = bulwark(&[
        "restore",
        &s1,
        "-r",
        repo,
        "--to-bucket",
        &target,
        "--overwrite",
        "never",
        "--json",
    ]);
    out.assert_ok();
    let again = out.json();
    assert_eq!(
        (&again["objects"], &again["skipped"]),
        (&Value::from(0), &Value::from(7)),
        "{again}"
    );

    // Into a directory, as files with their metadata as attributes.
    let files = dir.path().join("files");
    let out = bulwark(&[
        "restore",
        &s1,
        "-r",
        repo,
        "--target",
        files.to_str().unwrap(),
        "--json",
    ]);
    out.assert_ok();
    assert_eq!(
        std::fs::read(files.join("photos/2026/a.jpg")).unwrap(),
        photo
    );
    assert_eq!(std::fs::read(files.join("empty.txt")).unwrap(), b"");
    assert_eq!(
        std::fs::read(files.join("notes/today.txt")).unwrap(),
        b"today"
    );
    // Metadata as user attributes (the restore test above needed them on this file system too).
    let attr = |name: &str| xattr::get(files.join("photos/2026/a.jpg"), name).unwrap();
    assert_eq!(attr("user.s3.meta.owner").as_deref(), Some(&b"alice"[..]));
    assert_eq!(
        attr("user.s3.content-type").as_deref(),
        Some(&b"image/jpeg"[..])
    );
    let escaped = files.join(".bulwark-s3-keys/notes");
    assert_eq!(std::fs::read(&escaped).unwrap(), b"the notes object");
}

#[test]
fn a_missing_bucket_or_an_unreachable_endpoint_is_one_clear_error_and_stores_no_snapshot() {
    let dir = common::tempdir("s3-dataset-errors");
    let moto = Moto::start(&dir.path().join("moto.log"));
    let config = policy(dir.path(), &moto.url("no-such-bucket/x"));
    let cfg = config.to_str().unwrap();
    let out = bulwark(&["run", "-c", cfg, "--init", "--json", "media"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let report = out.json();
    let step = &report["datasets"][0]["steps"][0];
    assert_eq!(
        (&step["ok"], &step["failure"]),
        (&Value::Bool(false), &Value::from("source")),
        "{report}"
    );
    assert!(
        step["summary"].as_str().unwrap().contains("does not exist"),
        "{step}"
    );
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    assert_eq!(media_snapshots(repo), Vec::<Value>::new());

    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    policy(dir.path(), &url_at(dead, "media/x"));
    let out = bulwark(&["run", "-c", cfg, "--json", "media"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let step = &out.json()["datasets"][0]["steps"][0];
    assert!(
        step["summary"]
            .as_str()
            .unwrap()
            .contains("cannot reach the storage endpoint"),
        "{step}"
    );
    assert_eq!(media_snapshots(repo), Vec::<Value>::new());
    assert!(!out.stdout.contains("testing-secret") && !out.stderr.contains("testing-secret"));

    // Restoring into a bucket that does not exist: one line, the snapshot unharmed.
    moto.create_bucket("media");
    moto.put("media", "x/a.txt", &[], b"a");
    moto.put("media", "x/b.txt", &[], b"b");
    policy(dir.path(), &moto.url("media/x"));
    bulwark(&["run", "-c", cfg, "--json", "media"]).assert_ok();
    let out = bulwark(&[
        "restore",
        "latest",
        "-r",
        repo,
        "--to-bucket",
        &moto.url("gone/y"),
    ]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());

    // A snapshot that no longer holds what the backup listed fails its restore test by the
    // fingerprint, though its own summary was brought in line.
    bulwark(&["rewrite", "-r", repo, "--exclude", "/b.txt", "--forget"]).assert_ok();
    let out = bulwark(&[
        "restore-test",
        "-r",
        repo,
        "latest",
        "--dataset",
        "media",
        "--json",
    ]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let report = out.json();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["fingerprint"], "{report}");
    assert_eq!(report["kind"], "s3");
}
