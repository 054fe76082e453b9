//! No secret leaves the daemon: with a repository passphrase, a PostgreSQL password inside a
//! dataset's DSN (that dataset fails: no server listens there) and an API token in force, no
//! page, API response (body or header), metric or log line of the daemon holds any of them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};

use crate::common::{Auth, ROUTES, daemon, site};

const PASSPHRASE: &str = "passphrase-Qm7vX2kL9";
const DSN_PASSWORD: &str = "dsn-pw-Zt4rW8yB";
const TOKEN: &str = "token-Hc3nP6sJ1dF5";

/// Every log line of this test binary, from every thread, at every level.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSPHRASE, DSN_PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
    }
}

#[test]
fn no_secret_reaches_a_page_a_response_a_metric_or_a_log_line() {
    let log = captured();
    let (dir, policy) = site(|dir, t| {
        std::fs::write(dir.join("demo.passphrase"), format!("{PASSPHRASE}\n")).unwrap();
        t + &format!(
            r#"
[datasets.billing]
kind = "postgres"
source = "postgres://billing:{DSN_PASSWORD}@127.0.0.1:1/billing"
tier = "critical"
schedule = "every 6h"

[components.Billing]
datasets = ["billing"]
"#
        )
    });
    let s = daemon(
        dir,
        policy,
        &format!("# the operators\nops={TOKEN}\n"),
        chrono::Utc::now(),
    );
    let report = s.run_all();
    assert!(!report.ok, "the billing dataset cannot be backed up");
    // And once through the daemon's own job, which logs its outcome.
    let r = s.post_as("/api/datasets/billing/run");
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(s.daemon.wait_for_jobs(Duration::from_secs(60)));
    s.daemon.refresh().unwrap();
    let job = &s.daemon.jobs.recent()[0];
    assert_eq!(job.ok, Some(false), "{job:?}");

    s.open_incident(TOKEN);
    let mut paths: Vec<String> = ROUTES
        .iter()
        .filter(|r| r.0 == "get")
        .map(|r| r.2.to_string())
        .collect();
    for d in ["app-db", "docs", "billing"] {
        paths.push(format!("/datasets/{d}"));
        paths.push(format!("/api/datasets/{d}"));
    }
    paths.push("/api/events?limit=1000".into());
    let mut seen = 0;
    for path in &paths {
        let r = s.request(Method::GET, path, Auth::Bearer(TOKEN), None);
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_clean(path, &r.body);
        for (name, value) in &r.headers {
            assert_clean(&format!("{path}: header {name}"), value.to_str().unwrap());
        }
        seen += r.body.len();
    }
    assert!(seen > 10_000, "the pages said something");
    // The failure itself is shown, only without the password.
    let billing = s.get_as("/api/datasets/billing").body;
    assert!(billing.contains("billing"), "{billing}");
    assert_eq!(
        s.get_as("/api/datasets/billing").json()["status"]["verdict"],
        "breached"
    );

    // Refused requests that carry the token in a query string or a wrong header are not logged
    // with it either.
    for q in ["token", "access_token"] {
        let r = s.request(
            Method::GET,
            &format!("/api/status?{q}={TOKEN}"),
            Auth::None,
            None,
        );
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = s.request(
        Method::GET,
        "/api/status",
        Auth::Bearer(&format!("{TOKEN}-not")),
        None,
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("job failed"),
        "the job's line was captured:\n{log}"
    );
    assert!(
        log.contains("/api/status"),
        "request lines were captured:\n{log}"
    );
    assert_clean("the log", &log);
}

impl crate::common::Served {
    fn get_as(&self, path: &str) -> crate::common::Reply {
        self.request(Method::GET, path, Auth::Bearer(TOKEN), None)
    }

    fn post_as(&self, path: &str) -> crate::common::Reply {
        self.request(Method::POST, path, Auth::Bearer(TOKEN), None)
    }
}
