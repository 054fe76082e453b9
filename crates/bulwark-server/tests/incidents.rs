//! The daemon keeps incidents against a clock we move: reminders to the owner's channel before a
//! customer update or post-mortem is due and to the alternates' once overdue (webhooks on
//! loopback), each once per deadline, missed updates recorded; and over HTTP, the public status
//! page shows customer updates with their time and ETA and never an internal note, the incident
//! API opens and updates behind the token, and `/metrics` carries the new commitments.

mod common;

#[path = "../../bulwark-app/tests/support/http.rs"]
mod http;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bulwark_app::incident::{self, OpenRequest, UpdateRequest};
use bulwark_ledger::{EventFilter, EventKind};
use bulwark_policy::incident::IncidentState;
use bulwark_server::clock::{Clock, ManualClock};
use bulwark_server::http::{HttpState, router};
use bulwark_server::tokens::Tokens;
use chrono::{DateTime, TimeZone, Utc};
use http::Hook;
use tower::ServiceExt;

/// The embedded default, its incident commander reached through `pager` and escalated to
/// `backup`, customer updates to `customers`. Nothing has been backed up, so automatic incidents
/// are off: only the incidents a test opens exist.
fn site(pager: &Hook, backup: &Hook, customers: &Hook) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = common::copy_embedded_default(dir.path())
        .replace(
            "severity = { rpo_breached = 2, drill_failed = 3, primary_unreachable = 2 }",
            "severity = { rpo_breached = 0, drill_failed = 0, primary_unreachable = 0 }",
        )
        .replace(
            "alternates = [\"dave\", \"erin\"]",
            "alternates = [\"dave\", \"erin\"]\nchannels = [\"pager\"]\nalternate_channels = [\"backup\"]",
        );
    let text = format!(
        "{text}\n[status_page]\nsubscribers = [\"customers\"]\n\n\
         [notifications.pager]\nwebhook = \"{}\"\non = [\"update_due\", \"postmortem_due\"]\n\n\
         [notifications.backup]\nwebhook = \"{}\"\non = [\"update_overdue\", \"postmortem_overdue\"]\n\n\
         [notifications.customers]\nwebhook = \"{}\"\n",
        pager.url("/pager"),
        backup.url("/backup"),
        customers.url("/customers"),
    );
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn events(hook: &Hook) -> Vec<String> {
    hook.requests()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap().to_string())
        .collect()
}

/// Monday 30 November 2026, `h`:`m` UTC.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0).unwrap()
}

#[test]
fn reminders_reach_the_owner_then_the_alternates_once_per_deadline() {
    let (pager, backup, customers) = (
        Hook::statuses(&[]),
        Hook::statuses(&[]),
        Hook::statuses(&[]),
    );
    let (_dir, config) = site(&pager, &backup, &customers);
    let clock = Arc::new(ManualClock::new(at(8, 0)));
    let d = common::quick_daemon(&config, clock.clone());
    let ws = d.workspace();
    let id = incident::open(
        &ws,
        &OpenRequest {
            title: "Backups of app-db are delayed".into(),
            sev: 2,
            owner: None,
            state: IncidentState::Investigating,
            message: Some("We are investigating.".into()),
            internal: false,
            eta: None,
            cause: None,
            subject: None,
            at: at(9, 0),
        },
    )
    .unwrap()
    .incident
    .id;
    assert_eq!(events(&customers), ["incident_update"]);

    // 10:00: the update due at 11:00 is an hour away, beyond the 30-minute reminder.
    clock.set(at(10, 0));
    d.refresh().unwrap();
    assert!(events(&pager).is_empty());
    // 10:40: the owner hears it, once however often the daemon looks.
    clock.set(at(10, 40));
    d.refresh().unwrap();
    d.refresh().unwrap();
    assert_eq!(events(&pager), ["update_due"]);
    let r = &pager.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/pager"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(!r.headers.is_empty());
    assert!(
        pager.requests()[0].json()["message"]
            .as_str()
            .unwrap()
            .contains("due by 2026-11-30 11:00 UTC")
    );
    assert!(events(&backup).is_empty());
    // 11:05: overdue, so the alternates hear it; the slot is recorded as missed.
    clock.set(at(11, 5));
    d.refresh().unwrap();
    d.refresh().unwrap();
    assert_eq!(events(&backup), ["update_overdue"]);
    assert_eq!(
        events(&pager),
        ["update_due"],
        "not the owner's pager again"
    );
    assert_eq!(
        incident::find(&ws, &id).unwrap().missed_updates,
        [at(11, 0)]
    );
    let missed = ws
        .ledger()
        .events(&EventFilter::all().kind(EventKind::Incident).ok(false))
        .unwrap();
    assert_eq!(missed.len(), 1, "one missed-update event");
    // A customer update starts the next slot: 13:10, reminded again at 12:45.
    incident::update(
        &ws,
        &UpdateRequest {
            id: id.clone(),
            state: Some(IncidentState::Identified),
            message: "The storage array is degraded.".into(),
            internal: false,
            eta: None,
            sev: None,
            owner: None,
            at: at(11, 10),
        },
    )
    .unwrap();
    clock.set(at(12, 45));
    d.refresh().unwrap();
    assert_eq!(events(&pager), ["update_due", "update_due"]);
    // Resolved Monday 12:50: the post-mortem is due at the end of Monday 14 December.
    incident::resolve(&ws, &id, Some("Fixed.".into()), at(12, 50)).unwrap();
    clock.set(Utc.with_ymd_and_hms(2026, 12, 11, 9, 0, 0).unwrap());
    d.refresh().unwrap();
    assert_eq!(
        events(&pager),
        ["update_due", "update_due", "postmortem_due"]
    );
    clock.set(Utc.with_ymd_and_hms(2026, 12, 15, 0, 0, 0).unwrap());
    d.refresh().unwrap();
    d.refresh().unwrap();
    assert_eq!(events(&backup), ["update_overdue", "postmortem_overdue"]);
    // The status judged by the daemon says so too, and /metrics exports it.
    let view = d.view().unwrap();
    let pm = view
        .status
        .platform
        .aspects
        .iter()
        .find(|a| a.name == "postmortem")
        .unwrap();
    assert_eq!(pm.verdict, bulwark_policy::compliance::Verdict::Breached);
    let metrics = d.metrics.render();
    assert!(
        metrics.contains("bulwark_commitment_state{dataset=\"\",commitment=\"postmortem\"} 2"),
        "{metrics}"
    );
}

async fn get(app: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut r = Request::get(path);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(r.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
    json: &str,
) -> (StatusCode, String) {
    let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(r.body(Body::from(json.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn the_status_page_shows_customer_updates_and_never_internal_notes() {
    let (pager, backup, customers) = (
        Hook::statuses(&[]),
        Hook::statuses(&[]),
        Hook::statuses(&[]),
    );
    let (dir, config) = site(&pager, &backup, &customers);
    let clock = Arc::new(ManualClock::new(at(9, 0)));
    let d = common::quick_daemon(&config, clock.clone());
    d.refresh().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ops=s3cret-token\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let app = router(Arc::new(HttpState {
        daemon: d.clone(),
        tokens: Tokens::load(&token_file).unwrap(),
        tls: false,
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (s, page) = get(&app, "/status", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("No open incidents."), "{page}");

        // Opening needs the token.
        let open = r#"{"title": "Backups are delayed", "sev": 2, "message": "We are investigating."}"#;
        assert_eq!(post(&app, "/api/incidents", None, open).await.0, StatusCode::UNAUTHORIZED);
        let (s, body) = post(&app, "/api/incidents", Some("s3cret-token"), open).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["incident"]["id"], "INC-1");
        let note = r#"{"message": "db01 at 10.1.2.3 lost its RAID controller", "internal": true}"#;
        let (s, body) = post(&app, "/api/incidents/INC-1/updates", Some("s3cret-token"), note).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let upd = r#"{"message": "The cause is found; backups resume by 15:00.", "state": "identified", "eta": "2026-11-30T15:00:00Z"}"#;
        let (s, body) = post(&app, "/api/incidents/1/updates", Some("s3cret-token"), upd).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        // A mistake is a 422 with a hint, and no step.
        let (s, body) = post(&app, "/api/incidents/INC-9/resolve", Some("s3cret-token"), "{}").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("no incident INC-9") && body.contains("hint"), "{body}");

        let (_, page) = get(&app, "/status", None).await;
        assert!(page.contains("data-incident=\"INC-1\""), "{page}");
        assert!(page.contains("The cause is found; backups resume by 15:00."), "{page}");
        assert!(page.contains("We are investigating."), "{page}");
        assert!(page.contains("ETA 2026-11-30 15:00 UTC"), "{page}");
        assert!(page.contains("2026-11-30 09:00 UTC"), "the time of each update: {page}");
        assert!(!page.contains("RAID") && !page.contains("10.1.2.3"), "no internal note: {page}");
        assert!(!page.contains("incident-commander"), "no owner: {page}");
        // The status page's JSON carries the same, and no more.
        let (s, sp) = get(&app, "/api/status-page", Some("s3cret-token")).await;
        assert_eq!(s, StatusCode::OK);
        let sp: serde_json::Value = serde_json::from_str(&sp).unwrap();
        let updates = sp["incidents"][0]["updates"].as_array().unwrap();
        assert_eq!(updates.len(), 2, "{sp}");
        assert_eq!(updates[0]["state"], "identified", "newest first");
        assert_eq!(updates[0]["eta"], "2026-11-30T15:00:00Z");
        assert!(!sp.to_string().contains("RAID"), "{sp}");
        // Operators see everything, behind the token.
        assert_eq!(get(&app, "/api/incidents", None).await.0, StatusCode::UNAUTHORIZED);
        let (s, list) = get(&app, "/api/incidents", Some("s3cret-token")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(list.contains("RAID controller"), "{list}");
        let (s, ops) = get(&app, "/incidents", Some("s3cret-token")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(ops.contains("internal note") && ops.contains("RAID controller"), "{ops}");
        // Each POST named its caller in the ledger.
        let calls = d
            .workspace()
            .ledger()
            .events(&EventFilter::all().kind(EventKind::ApiCall))
            .unwrap();
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|e| e.details["caller"] == "ops"));
    });
    // Customers heard the two customer-facing steps, never the note.
    let heard: Vec<String> = customers
        .requests()
        .iter()
        .map(|r| r.json()["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(heard.iter().all(|m| !m.contains("RAID")), "{heard:?}");
    assert_eq!(clock.now(), at(9, 0));
}
