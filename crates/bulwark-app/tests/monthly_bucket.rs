//! The daemon's monthly evidence pack filed into a bucket (`[evidence] monthly_to = "s3://…"`)
//! on moto, an S3-compatible server on loopback: filed once as one object, a pack that verifies,
//! and left alone on the next tick. Its own test binary: it sets the AWS credentials for the
//! process before any thread starts.

#[path = "support/site.rs"]
mod site;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulwark_app::evidence::{monthly, pack, sign, verify};
use bulwark_app::run::{RunRequest, Selection, run};
use bulwark_ops::Silent;
use chrono::Utc;

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server must be installed (pip install 'moto[server]'); .ci/run installs it");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child, port)
}

#[test]
fn last_months_pack_is_filed_into_a_bucket_once() {
    // SAFETY: the only test of this binary, before it starts any thread.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    }
    let m = moto();
    let mut s = TcpStream::connect(("127.0.0.1", m.1)).unwrap();
    write!(
        s,
        "PUT /evidence HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let url = format!(
        "s3://evidence/audits?region=us-east-1&endpoint=http://127.0.0.1:{}&allow_http=true",
        m.1
    );

    let (dir, config) = site::site();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[evidence]\nsigning_key = \"evidence.key\"\nmonthly_to = \"{url}\"\n");
    std::fs::write(&config, text).unwrap();
    let (public, _) = sign::generate(&dir.path().join("evidence.key")).unwrap();
    let ws = site::open(&config);
    ws.init_missing().unwrap();
    let now = Utc::now();
    let (from, _) = monthly::previous_month(now);
    run(
        &ws,
        &RunRequest {
            selection: Selection::All,
            now: from + chrono::Duration::days(3),
            progress: &Silent,
            context: None,
        },
    )
    .unwrap();
    let filed = monthly::file_last_month(&ws, now)
        .unwrap()
        .expect("last month filed");
    let name = monthly::file_name(from);
    assert!(filed.ends_with(&format!("/{name}")), "{filed}");

    let bucket = bulwark_repo::StoreBackend::bucket(&url).unwrap();
    let objects = bucket.list_objects().unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, [name.as_str()], "one object, nothing partial");
    let mut bytes = Vec::new();
    bucket
        .get_object(&name)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let local = dir.path().join(&name);
    std::fs::write(&local, &bytes).unwrap();
    let files = pack::read(&local).unwrap();
    let key = sign::load_public_key(&public).unwrap();
    assert!(verify::verify(&files, &key, Some(&**ws.ledger())).is_ok());
    // Filed once: the next tick leaves it alone.
    assert!(monthly::file_last_month(&ws, now).unwrap().is_none());
    assert_eq!(bucket.list_objects().unwrap().len(), 1);
}
