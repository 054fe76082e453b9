//! A real daemon over a real workspace for the HTTP tests: the embedded default (examples/) copied
//! into a temporary directory, run once, its view computed, and requests sent to the router
//! in-process.

#![allow(dead_code)] // Each test binary uses a part of this module.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bulwark_app::Credentials;
use bulwark_app::run::{RunReport, RunRequest, Selection, run};
use bulwark_ops::Silent;
use bulwark_server::clock::ManualClock;
use bulwark_server::daemon::{Daemon, DaemonOptions, Timing};
use bulwark_server::http::{self, HttpState};
use bulwark_server::lease::LocalLeases;
use bulwark_server::tokens::Tokens;
use chrono::{DateTime, Utc};
use tower::ServiceExt;

/// The token of the holder `alice` in every site's token file.
pub const TOKEN: &str = "4c1d0e6a0f1b49e4a3b1d9d2c8e7f6a5-test-token";
/// The name the token file gives its holder: the caller in the ledger.
pub const HOLDER: &str = "alice";

/// Copy the embedded default's sample data and passphrase into `dir`; the policy file's text,
/// its state moved under `dir/state/`.
pub fn copy_embedded_default(dir: &Path) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(examples.join("sample"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        examples.join("demo.passphrase"),
        dir.join("demo.passphrase"),
    )
    .unwrap();
    std::fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/")
}

/// A daemon over `config` (creating its repositories) whose loops poll and refresh every 100 ms,
/// on `clock`: for tests that drive the scheduler themselves.
pub fn quick_daemon(config: &Path, clock: Arc<ManualClock>) -> Arc<Daemon> {
    Daemon::new(
        config,
        Arc::new(LocalLeases::new("test-node")),
        DaemonOptions {
            credentials: Credentials::default(),
            cache: false,
            clock,
            node: "test-node".into(),
            timing: Timing {
                poll: std::time::Duration::from_millis(100),
                refresh: std::time::Duration::from_millis(100),
                lease_ttl: std::time::Duration::from_secs(5),
                stop_grace: std::time::Duration::from_secs(5),
            },
            init: true,
        },
    )
    .unwrap()
}

/// The embedded default copied with its sample data into a fresh directory, its state under
/// `state/`. `edit` may change the policy file's text.
pub fn site(edit: impl FnOnce(&Path, String) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = copy_embedded_default(dir.path());
    // Evidence packs are signed: every site has a key, so /api/evidence answers with a pack.
    bulwark_app::evidence::sign::generate(&dir.path().join("evidence.key")).unwrap();
    let text = text + "\n[evidence]\nsigning_key = \"evidence.key\"\n";
    let text = edit(dir.path(), text);
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

/// A token file holding `lines`, readable by its owner only.
pub fn token_file(dir: &Path, lines: &str) -> PathBuf {
    let path = dir.join("tokens");
    std::fs::write(&path, lines).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A daemon over a site, and the router that serves it.
pub struct Served {
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
    pub clock: Arc<ManualClock>,
    pub daemon: Arc<Daemon>,
    pub state: Arc<HttpState>,
    pub app: Router,
    pub rt: tokio::runtime::Runtime,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Start a daemon over `policy` (creating its repositories) with `tokens` as its token file's
/// text, at `now`. No run yet, no view yet.
pub fn daemon(dir: tempfile::TempDir, policy: PathBuf, tokens: &str, now: DateTime<Utc>) -> Served {
    let clock = Arc::new(ManualClock::new(now));
    let daemon = Daemon::new(
        &policy,
        Arc::new(LocalLeases::new("t")),
        DaemonOptions {
            credentials: Credentials::default(),
            cache: false,
            clock: clock.clone(),
            node: "test-node".into(),
            timing: Timing::default(),
            init: true,
        },
    )
    .unwrap();
    let tokens = Tokens::load(&token_file(dir.path(), tokens)).unwrap();
    let state = Arc::new(HttpState::new(daemon.clone(), tokens, false));
    let app = http::router(state.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Served {
        dir,
        policy,
        clock,
        daemon,
        state,
        app,
        rt,
    }
}

/// The embedded default served after one run of everything, its view computed.
pub fn embedded_default() -> Served {
    let (dir, policy) = site(|_, t| t);
    let s = daemon(dir, policy, &format!("{HOLDER}={TOKEN}\n"), Utc::now());
    let report = s.run_all();
    assert!(report.ok, "{report:?}");
    s.daemon.refresh().unwrap();
    s
}

/// How a request authenticates itself.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Served {
    /// Run every dataset, every step, as `bulwark run` would, at the daemon's time.
    pub fn run_all(&self) -> RunReport {
        run(
            &self.daemon.workspace(),
            &RunRequest {
                selection: Selection::All,
                now: bulwark_server::clock::Clock::now(self.clock.as_ref()),
                progress: &Silent,
                context: None,
            },
        )
        .unwrap()
    }

    pub fn send(&self, req: Request<Body>) -> Reply {
        self.rt.block_on(async {
            let r = self.app.clone().oneshot(req).await.unwrap();
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
            Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        })
    }

    pub fn request(&self, method: Method, path: &str, auth: Auth, accept: Option<&str>) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(c) => b = b.header(header::COOKIE, c),
        }
        if let Some(a) = accept {
            b = b.header(header::ACCEPT, a);
        }
        self.send(b.body(Body::empty()).unwrap())
    }

    /// A request with a JSON body.
    pub fn request_json(&self, method: Method, path: &str, auth: Auth, body: &str) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(c) => b = b.header(header::COOKIE, c),
        }
        self.send(b.body(Body::from(body.to_string())).unwrap())
    }

    /// Open INC-1 with a customer update and an internal note, through the API, as `token`.
    pub fn open_incident(&self, token: &str) {
        let r = self.request_json(
            Method::POST,
            "/api/incidents",
            Auth::Bearer(token),
            r#"{"title": "Backups delayed", "sev": 2, "message": "We are investigating."}"#,
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = self.request_json(
            Method::POST,
            "/api/incidents/INC-1/updates",
            Auth::Bearer(token),
            r#"{"message": "the controller is replaced", "internal": true}"#,
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Auth::Bearer(TOKEN), None)
    }

    pub fn post(&self, path: &str) -> Reply {
        self.request(Method::POST, path, Auth::Bearer(TOKEN), None)
    }

    /// The ledger's head sequence number now.
    pub fn ledger_head(&self) -> u64 {
        self.daemon.workspace().ledger().head().unwrap().seq
    }
}

/// Every route the router serves: method, path template, a concrete path, and whether it needs
/// a token. The OpenAPI test checks that the document describes exactly these.
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    ("get", "/healthz", "/healthz", false),
    ("get", "/status", "/status", false),
    ("get", "/login", "/login", false),
    ("post", "/login", "/login", false),
    ("post", "/logout", "/logout", false),
    ("get", "/", "/", true),
    ("get", "/datasets/{name}", "/datasets/app-db", true),
    ("post", "/datasets/{name}/run", "/datasets/app-db/run", true),
    ("get", "/ledger", "/ledger", true),
    ("get", "/jobs", "/jobs", true),
    ("get", "/api/status", "/api/status", true),
    ("get", "/api/datasets", "/api/datasets", true),
    ("get", "/api/datasets/{name}", "/api/datasets/app-db", true),
    (
        "post",
        "/api/datasets/{name}/run",
        "/api/datasets/app-db/run",
        true,
    ),
    ("get", "/api/ledger", "/api/ledger", true),
    ("get", "/api/jobs", "/api/jobs", true),
    ("get", "/api/events", "/api/events", true),
    ("get", "/api/status-page", "/api/status-page", true),
    ("get", "/openapi.json", "/openapi.json", true),
    ("get", "/metrics", "/metrics", true),
    ("get", "/readyz", "/readyz", true),
    ("get", "/incidents", "/incidents", true),
    ("get", "/api/incidents", "/api/incidents", true),
    ("post", "/api/incidents", "/api/incidents", true),
    ("get", "/api/incidents/{id}", "/api/incidents/INC-1", true),
    (
        "post",
        "/api/incidents/{id}/updates",
        "/api/incidents/INC-1/updates",
        true,
    ),
    (
        "post",
        "/api/incidents/{id}/resolve",
        "/api/incidents/INC-1/resolve",
        true,
    ),
    (
        "get",
        "/api/evidence",
        "/api/evidence?from=2026-01-01",
        true,
    ),
];

/// A dataset whose backup waits until the file `gate` exists: a job that is running for as long
/// as a test wants, without sleeping on a clock. It gives up when the gate's directory is gone
/// (a test that failed before opening it), so no stray process outlives the test.
pub fn gated_dataset(gate: &Path) -> String {
    let dir = gate.parent().expect("the gate is in a directory");
    format!(
        r#"
[datasets.gated]
kind = "command"
command = ["/bin/sh", "-c", "while [ ! -e '{}' ]; do [ -d '{}' ] || exit 1; sleep 0.02; done; echo payload"]
tier = "standard"
schedule = "every 6h"
"#,
        gate.display(),
        dir.display()
    )
}
