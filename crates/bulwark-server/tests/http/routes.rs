//! Every route: status codes, content types, the refusals of requests without a valid token, the
//! browser's cookie session, no state change on GET, and a run on request recorded with its
//! caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bulwark_ledger::{EventFilter, EventKind};
use bulwark_server::http::{self, HttpState};
use bulwark_server::tokens::Tokens;
use tower::ServiceExt;

use crate::common::{
    Auth, HOLDER, ROUTES, Reply, Served, TOKEN, daemon, embedded_default, gated_dataset, site,
};

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

fn private_routes() -> impl Iterator<Item = (Method, &'static str)> {
    ROUTES
        .iter()
        .filter(|r| r.3)
        .map(|(m, _, path, _)| (method(m), *path))
}

fn assert_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
    assert_eq!(r.header(header::WWW_AUTHENTICATE), Some("Bearer"), "{what}");
}

/// The `data-verdict` of the row `data-dataset="NAME"` on the overview.
fn row_verdict<'a>(html: &'a str, name: &str) -> &'a str {
    let row = &html[html
        .find(&format!("data-dataset=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}"))..];
    let row = &row[..row.find("</tr>").unwrap()];
    let v = &row[row.find("data-verdict=\"").unwrap() + 14..];
    &v[..v.find('"').unwrap()]
}

fn login(s: &Served, token: &str) -> Reply {
    s.send(
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap(),
    )
}

#[test]
fn the_public_routes_need_no_token() {
    let s = embedded_default();
    let r = s.request(Method::GET, "/healthz", Auth::None, None);
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("text/plain"), "{r:?}");
    assert_eq!(r.body, "ok\n");

    let r = s.request(Method::GET, "/status", Auth::None, None);
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("text/html"), "{r:?}");
    // Every component of the policy file, and nothing internal: no dataset, repository, reason.
    for c in ["Spark Cloud", "Document storage"] {
        assert!(r.body.contains(c), "{c} missing: {}", r.body);
    }
    let view = s.daemon.view().unwrap();
    for internal in ["app-db", "docs", "primary", "offsite", "ledger", "sqlite"] {
        assert!(
            !r.body.contains(internal),
            "the status page names '{internal}'"
        );
    }
    for d in view.status.datasets.values() {
        assert!(!r.body.contains(&d.status.reason));
    }

    let r = s.request(Method::GET, "/login", Auth::None, None);
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("name=\"token\""), "{}", r.body);
}

#[test]
fn every_private_route_refuses_a_request_without_a_valid_token() {
    let s = embedded_default();
    let head = s.ledger_head();
    let basic = format!("Basic {}", "YWxpY2U6dG9rZW4="); // alice:token
    for (m, path) in private_routes() {
        let what = format!("{m} {path}");
        let r = s.request(m.clone(), path, Auth::None, None);
        assert_refused(&r, &what);
        assert!(r.content_type().starts_with("application/json"), "{what}");
        assert!(r.json()["error"].as_str().unwrap().contains("bearer token"));

        // A browser is shown the sign-in form instead.
        let r = s.request(m.clone(), path, Auth::None, Some("text/html,*/*"));
        assert_refused(&r, &what);
        assert!(r.content_type().starts_with("text/html"), "{what}");
        assert!(r.body.contains("action=\"/login\""), "{what}");

        for wrong in ["wrong", "", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
            assert_refused(
                &s.request(m.clone(), path, Auth::Bearer(wrong), None),
                &what,
            );
        }
        // A token is accepted only in the Authorization header: a query string ends up in
        // logs, histories and Referer headers.
        for q in ["token", "access_token", "bearer", "api_token"] {
            let url = format!("{path}?{q}={TOKEN}");
            assert_refused(&s.request(m.clone(), &url, Auth::None, None), &url);
        }
        for value in [basic.as_str(), TOKEN, &format!("Token {TOKEN}")] {
            let r = s.send(
                Request::builder()
                    .method(m.clone())
                    .uri(path)
                    .header(header::AUTHORIZATION, value)
                    .body(Body::empty())
                    .unwrap(),
            );
            assert_refused(&r, &format!("{what} with Authorization: {value}"));
        }
        // The raw token is no session cookie.
        let cookie = format!("bulwark_token={TOKEN}");
        assert_refused(
            &s.request(m.clone(), path, Auth::Cookie(&cookie), None),
            &what,
        );
    }
    assert_eq!(
        s.ledger_head(),
        head,
        "a refused request changed the ledger"
    );
    assert!(s.daemon.jobs.running().is_empty() && s.daemon.jobs.recent().is_empty());
}

#[test]
fn every_route_answers_with_its_status_and_content_type() {
    let s = embedded_default();
    s.open_incident(TOKEN);
    let head = s.ledger_head();
    let expect = |path: &str| -> &str {
        match path {
            "/metrics" => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "/readyz" | "/healthz" => "text/plain",
            p if p.starts_with("/api/evidence") => "application/x-tar",
            p if p.starts_with("/api/") || p == "/openapi.json" => "application/json",
            _ => "text/html",
        }
    };
    for (m, _, path, private) in ROUTES {
        if *m != "get" {
            continue;
        }
        let auth = if *private {
            Auth::Bearer(TOKEN)
        } else {
            Auth::None
        };
        let r = s.request(Method::GET, path, auth, None);
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        assert!(
            r.content_type().starts_with(expect(path)),
            "GET {path}: {}",
            r.content_type()
        );
        // Nothing loads from elsewhere, nothing is framed, nothing is cached.
        let csp = r.header(header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
        if expect(path) == "text/html" {
            assert!(r.body.starts_with("<!DOCTYPE html>"), "{path}");
            assert!(!r.body.contains("<script"), "{path} holds a script");
            assert!(!r.body.contains("http://") && !r.body.contains("https://"));
        }
        if expect(path) == "application/json" {
            r.json();
        }
    }
    let metrics = s.get("/metrics").body;
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    assert!(metrics.contains("bulwark_commitment_state{dataset=\"app-db\",commitment=\"rpo\"} 0"));
    let openapi = s.get("/openapi.json").json();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert_eq!(s.ledger_head(), head, "a GET changed the ledger");
    assert!(s.daemon.jobs.recent().is_empty(), "a GET started a job");
}

#[test]
fn the_overview_shows_what_status_says() {
    let s = embedded_default();
    let status = s.get("/api/status").json();
    let page = s.get("/").body;
    let datasets = status["datasets"].as_object().unwrap();
    assert_eq!(datasets.len(), 2);
    for (name, d) in datasets {
        assert_eq!(row_verdict(&page, name), d["verdict"], "{name}");
        assert!(page.contains(d["reason"].as_str().unwrap()), "{name}");
    }
    assert_eq!(row_verdict(&page, "ledger"), status["ledger"]["verdict"]);
    // The same report `bulwark status --json` prints for that moment.
    let cli =
        bulwark_app::status::status(&s.daemon.workspace(), s.daemon.view().unwrap().at).unwrap();
    let cli = serde_json::to_value(&cli).unwrap();
    for (name, d) in datasets {
        assert_eq!(d["verdict"], cli["datasets"][name]["verdict"], "{name}");
        assert_eq!(d["aspects"], cli["datasets"][name]["aspects"], "{name}");
    }
}

#[test]
fn no_get_changes_state_and_other_methods_are_refused() {
    let s = embedded_default();
    let head = s.ledger_head();
    for path in [
        "/api/datasets/app-db/run",
        "/datasets/app-db/run",
        "/logout",
    ] {
        for auth in [Auth::Bearer(TOKEN), Auth::None] {
            let r = s.request(Method::GET, path, auth, None);
            // Without a token a private route may refuse first; it never runs anything.
            assert!(
                r.status == StatusCode::METHOD_NOT_ALLOWED || r.status == StatusCode::UNAUTHORIZED,
                "GET {path}: {}",
                r.status
            );
        }
        assert_eq!(
            s.request(Method::GET, path, Auth::Bearer(TOKEN), None)
                .status,
            StatusCode::METHOD_NOT_ALLOWED,
            "GET {path}"
        );
    }
    for (m, path) in [
        (Method::DELETE, "/api/datasets/app-db"),
        (Method::PUT, "/api/datasets/app-db/run"),
        (Method::POST, "/api/status"),
        (Method::POST, "/"),
        (Method::DELETE, "/status"),
    ] {
        let r = s.request(m.clone(), path, Auth::Bearer(TOKEN), None);
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
    }
    assert_eq!(s.ledger_head(), head);
    assert!(s.daemon.jobs.recent().is_empty() && s.daemon.jobs.running().is_empty());
}

#[test]
fn a_run_on_request_is_accepted_recorded_with_its_caller_and_not_doubled() {
    let (dir, policy) = site(|dir, t| t + &gated_dataset(&dir.join("open")));
    let gate = dir.path().join("open");
    let s = daemon(
        dir,
        policy,
        &format!("{HOLDER}={TOKEN}\n"),
        chrono::Utc::now(),
    );
    s.daemon.refresh().unwrap();
    let head = s.ledger_head();

    let r = s.post("/api/datasets/gated/run");
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"));
    let job = r.json();
    assert_eq!(job["dataset"], "gated");
    assert_eq!(job["trigger"], format!("api:{HOLDER}"));
    assert!(job["finished"].is_null() && job["ok"].is_null());

    // The request is evidence: an api_call event naming the caller.
    let calls = s
        .daemon
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::ApiCall))
        .unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert!(call.seq > head);
    assert_eq!(call.dataset.as_deref(), Some("gated"));
    assert_eq!(call.details["caller"], HOLDER);
    assert_eq!(call.details["action"], "run");
    assert!(call.summary.contains(HOLDER), "{}", call.summary);

    // While it runs, a second request is refused and recorded nowhere.
    let running = s.get("/api/jobs").json();
    assert_eq!(running["running"].as_array().unwrap().len(), 1, "{running}");
    for path in ["/api/datasets/gated/run", "/datasets/gated/run"] {
        let r = s.post(path);
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        assert!(r.body.contains("is running already"), "{path}: {}", r.body);
    }
    let calls_after = s
        .daemon
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::ApiCall))
        .unwrap();
    assert_eq!(calls_after.len(), 1);

    std::fs::write(&gate, b"").unwrap();
    assert!(s.daemon.wait_for_jobs(Duration::from_secs(120)));
    let jobs = s.get("/api/jobs").json();
    let recent = jobs["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1, "{jobs}");
    assert_eq!(recent[0]["ok"], true, "{jobs}");
    assert_eq!(recent[0]["id"], job["id"]);

    // The dashboard's button: the same run, then back to the dataset's page.
    let r = s.post("/datasets/gated/run");
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header(header::LOCATION), Some("/datasets/gated"));
    assert!(s.daemon.wait_for_jobs(Duration::from_secs(120)));
    let calls = s
        .daemon
        .workspace()
        .ledger()
        .events(&EventFilter::all().kind(EventKind::ApiCall))
        .unwrap();
    assert_eq!(calls.len(), 2);
}

#[test]
fn unknown_datasets_are_not_found() {
    let s = embedded_default();
    let head = s.ledger_head();
    for (m, path, html) in [
        (Method::GET, "/api/datasets/nope", false),
        (Method::POST, "/api/datasets/nope/run", false),
        (Method::GET, "/datasets/nope", true),
        (Method::POST, "/datasets/nope/run", true),
        (Method::GET, "/api/datasets/..%2Fapp-db", false),
    ] {
        let r = s.request(m.clone(), path, Auth::Bearer(TOKEN), None);
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
        if html {
            assert!(r.content_type().starts_with("text/html"));
        } else {
            assert!(r.content_type().starts_with("application/json"), "{path}");
        }
        assert!(
            r.body.contains("no dataset") || r.body.contains("No dataset"),
            "{path}: {}",
            r.body
        );
    }
    let r = s.get("/api/nothing-here");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(s.ledger_head(), head);
}

#[test]
fn a_browser_signs_in_with_the_token_and_keeps_a_session_cookie() {
    let s = embedded_default();
    let r = login(&s, "wrong");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header(header::SET_COOKIE).is_none());

    let r = login(&s, TOKEN);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header(header::LOCATION), Some("/"));
    let set = r.header(header::SET_COOKIE).unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    // The browser keeps a session, not the token itself.
    assert!(!set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    for path in ["/", "/datasets/app-db", "/ledger", "/jobs", "/api/status"] {
        let r = s.request(Method::GET, path, Auth::Cookie(&cookie), None);
        assert_eq!(r.status, StatusCode::OK, "{path} with the session cookie");
    }
    // Among other cookies too.
    let r = s.request(
        Method::GET,
        "/",
        Auth::Cookie(&format!("theme=dark; {cookie}; x=y")),
        None,
    );
    assert_eq!(r.status, StatusCode::OK);
    // A forged session is refused.
    let forged = format!("bulwark_session={}", "0".repeat(64));
    assert_refused(
        &s.request(Method::GET, "/", Auth::Cookie(&forged), None),
        "forged",
    );

    // A state-changing request from another site is refused even with the cookie.
    let head = s.ledger_head();
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = s.send(
            Request::post("/datasets/app-db/run")
                .header(header::HOST, "127.0.0.1:8080")
                .header(header::COOKIE, &cookie)
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {value}");
    }
    assert_eq!(s.ledger_head(), head);
    // From the dashboard itself it runs.
    let r = s.send(
        Request::post("/datasets/app-db/run")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, &cookie)
            .header("origin", "http://127.0.0.1:8080")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(s.daemon.wait_for_jobs(Duration::from_secs(120)));
    assert_eq!(s.daemon.jobs.recent()[0].trigger, format!("api:{HOLDER}"));

    // Over TLS the cookie is Secure, and a session of one process is no session of another.
    let tokens = Tokens::load(&s.dir.path().join("tokens")).unwrap();
    let tls = http::router(Arc::new(HttpState::new(s.daemon.clone(), tokens, true)));
    let r = s.rt.block_on(
        tls.clone().oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={TOKEN}")))
                .unwrap(),
        ),
    );
    let set = r.unwrap().headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("; Secure"), "{set}");
    let r = s.rt.block_on(
        tls.oneshot(
            Request::get("/api/status")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        ),
    );
    assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);

    let r = s.request(Method::POST, "/logout", Auth::Cookie(&cookie), None);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION), Some("/status"));
    let cleared = r.header(header::SET_COOKIE).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[test]
fn before_the_first_status_and_while_stopping() {
    let (dir, policy) = site(|_, t| t);
    let s = daemon(
        dir,
        policy,
        &format!("{HOLDER}={TOKEN}\n"),
        chrono::Utc::now(),
    );
    for path in ["/api/status", "/api/ledger", "/api/status-page", "/readyz"] {
        let r = s.get(path);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(r.json()["error"].as_str().unwrap().contains("starting"));
    }
    for path in ["/", "/ledger", "/datasets/app-db"] {
        let r = s.get(path);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(r.content_type().starts_with("text/html"));
    }
    let r = s.request(Method::GET, "/status", Auth::None, None);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.get("/healthz").status, StatusCode::OK);
    // Jobs and metrics need no view.
    assert_eq!(s.get("/api/jobs").status, StatusCode::OK);
    assert_eq!(s.get("/metrics").status, StatusCode::OK);

    s.daemon.refresh().unwrap();
    assert_eq!(s.get("/readyz").status, StatusCode::OK);

    s.daemon.drain();
    let r = s.get("/readyz");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"].as_str().unwrap().contains("stopping"));
    let head = s.ledger_head();
    let r = s.post("/api/datasets/app-db/run");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(s.ledger_head(), head);
    assert!(s.get("/api/jobs").json()["draining"].as_bool().unwrap());
}

#[test]
fn events_are_filtered_and_bad_queries_refused() {
    let s = embedded_default();
    let all = s.get("/api/events?limit=1000").json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len() as u64, s.ledger_head());
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first");

    let backups = s.get("/api/events?dataset=app-db&kind=backup").json();
    let backups = backups.as_array().unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["kind"], "backup");
    assert_eq!(backups[0]["dataset"], "app-db");

    let newest = s.get("/api/events?limit=2").json();
    let newest: Vec<u64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(newest, seqs[seqs.len() - 2..]);

    let after = s.get(&format!("/api/events?after_seq={}", seqs[2])).json();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > seqs[2])
    );
    assert_eq!(
        after.as_array().unwrap().len(),
        seqs.len() - 3,
        "every later event"
    );

    for bad in [
        "/api/events?limit=abc",
        "/api/events?after_seq=-1",
        "/api/events?limit=0",
        "/api/events?limit=1001",
    ] {
        let r = s.get(bad);
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert!(r.content_type().starts_with("application/json"), "{bad}");
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }
}
