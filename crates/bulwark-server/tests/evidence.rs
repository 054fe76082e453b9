//! Evidence from the daemon: the scheduler files one signed pack per finished month, by the clock
//! it is given, once; `GET /api/evidence` returns a pack as a tar to a token holder only.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bulwark_app::evidence::{monthly, pack, sign, verify};
use bulwark_server::clock::ManualClock;
use bulwark_server::daemon::Daemon;
use bulwark_server::http::{HttpState, router};
use bulwark_server::tokens::Tokens;
use chrono::Utc;
use tower::ServiceExt;

fn site() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = common::copy_embedded_default(dir.path());
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[daemon]\nmax_jitter = \"0\"\n[evidence]\nsigning_key = \"evidence.key\"\nmonthly_to = \"filed\"\n"
        ),
    )
    .unwrap();
    let (public, _) = sign::generate(&dir.path().join("evidence.key")).unwrap();
    (dir, config, public)
}

fn settle(d: &Arc<Daemon>) {
    while !d.tick().unwrap().is_empty() {
        assert!(d.wait_for_jobs(Duration::from_secs(120)), "jobs finish");
    }
}

#[test]
fn the_daemon_files_each_finished_month_and_serves_packs_to_token_holders() {
    let (dir, config, public) = site();
    let now = Utc::now();
    let (last_month, this_month) = monthly::previous_month(now);
    let clock = Arc::new(ManualClock::new(last_month + chrono::Duration::days(3)));
    let d = common::quick_daemon(&config, clock.clone());
    settle(&d);
    // Mid-month, the month before last was filed (nothing happened in it), not this one.
    let filed = dir.path().join("filed");
    let before = monthly::file_name(monthly::previous_month(last_month).0);
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&filed)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(), vec![before.clone()]);
    // The month over, the next tick files it, with the backups made in it.
    clock.set(this_month + chrono::Duration::hours(1));
    settle(&d);
    let month_file = monthly::file_name(last_month);
    let mut want = vec![before, month_file.clone()];
    want.sort();
    assert_eq!(names(), want);
    let files = pack::read(&filed.join(&month_file)).unwrap();
    let key = sign::load_public_key(&public).unwrap();
    let ws = d.workspace();
    assert!(verify::verify(&files, &key, Some(&**ws.ledger())).is_ok());
    let events = String::from_utf8(files["events.jsonl"].clone()).unwrap();
    assert!(events.contains("\"kind\":\"backup\""), "{events}");
    settle(&d);
    assert_eq!(names().len(), 2, "each month is filed once");

    // The API: a tar for a token holder, 401 for anyone else, 400 for a bad period.
    let tokens_file = dir.path().join("tokens");
    std::fs::write(&tokens_file, "auditor=s3cret-token\n").unwrap();
    std::fs::set_permissions(
        &tokens_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let app = router(Arc::new(HttpState {
        daemon: d.clone(),
        tokens: Tokens::load(&tokens_file).unwrap(),
        tls: false,
    }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |uri: String, token: Option<&str>| {
        let mut r = Request::get(uri);
        if let Some(t) = token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = rt
            .block_on(app.clone().oneshot(r.body(Body::empty()).unwrap()))
            .unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = rt
            .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
            .unwrap();
        (status, ctype, body.to_vec())
    };
    let uri = format!(
        "/api/evidence?from={}&to={}",
        last_month.format("%Y-%m-%d"),
        this_month.format("%Y-%m-%d")
    );
    let (status, _, _) = get(uri.clone(), None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ctype, body) = get(uri, Some("s3cret-token"));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype.as_deref(), Some("application/x-tar"));
    let tar = dir.path().join("served.tar");
    std::fs::write(&tar, &body).unwrap();
    let served = pack::read(&tar).unwrap();
    assert!(verify::verify(&served, &key, Some(&**ws.ledger())).is_ok());
    let (status, _, body) = get("/api/evidence?from=yesterday".into(), Some("s3cret-token"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("bad from"));
}
