//! `openapi.json` against the daemon: it describes exactly the routes the router serves, every
//! response of every route (status code and media type) is documented, and every JSON body
//! validates against its schema, strictly: objects admit no field the document does not name,
//! formats (date-time) are checked, and a body missing a required field fails.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Auth, HOLDER, ROUTES, Reply, Served, TOKEN, daemon, gated_dataset, site};

fn document() -> Value {
    serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json is JSON")
}

/// A validator for the schema at `pointer` in `doc`, its `#/components/...` refs resolved
/// against the document.
fn validator(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut schema = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("the document has nothing at {pointer}"))
        .clone();
    if let Value::Object(o) = &mut schema {
        o.insert("components".into(), doc["components"].clone());
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Check a real response of `method template` against the document: its status is documented,
/// its media type is among the documented ones, and a JSON body validates.
fn conforms(doc: &Value, method: &str, template: &str, r: &Reply) {
    let op = format!("/paths/{}/{method}", escape(template));
    let mut response = doc
        .pointer(&format!("{op}/responses/{}", r.status.as_u16()))
        .unwrap_or_else(|| {
            panic!(
                "{method} {template} answered {} which the document does not list: {}",
                r.status, r.body
            )
        });
    let mut pointer = format!("{op}/responses/{}", r.status.as_u16());
    if let Some(target) = response.get("$ref").and_then(Value::as_str) {
        pointer = target.trim_start_matches('#').to_string();
        response = doc.pointer(&pointer).expect("the response's $ref resolves");
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            r.body.is_empty() || r.status.is_redirection(),
            "{method} {template} {}: the document gives no body, the server sent {}",
            r.status,
            r.body
        );
        return;
    };
    let media = r.content_type().split(';').next().unwrap().trim();
    assert!(
        content.contains_key(media),
        "{method} {template} {}: media type {media} is not documented ({:?})",
        r.status,
        content.keys().collect::<Vec<_>>()
    );
    if media == "application/json" {
        let schema = format!("{pointer}/content/{}/schema", escape(media));
        let v = validator(doc, &schema);
        let body = r.json();
        let errors: Vec<String> = v
            .iter_errors(&body)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {}: the body does not match {schema}:\n{}",
            r.status,
            errors.join("\n")
        );
    }
}

/// The embedded default with two datasets that fail in different ways (a restore-test check
/// that fails, a PostgreSQL server that is not there), and one gated so a job is running: every
/// field of every schema, null or not, shows up in some response.
fn rich_site() -> (Served, std::path::PathBuf) {
    let (dir, policy) = site(|dir, t| {
        t + &gated_dataset(&dir.join("open"))
            + r#"
[datasets.orders-check]
kind = "sqlite"
source = "sample/app.db"
tier = "critical"
schedule = "daily at 03:00"
restore_test = { every = "7d", checks = ["SELECT count(*) > 1000000 FROM orders"] }

[datasets.billing]
kind = "postgres"
source = "postgres://billing@127.0.0.1:1/billing"
tier = "standard"
schedule = "every 6h"
"#
    });
    let gate = dir.path().join("open");
    let s = daemon(
        dir,
        policy,
        &format!("{HOLDER}={TOKEN}\n"),
        chrono::Utc::now(),
    );
    std::fs::write(&gate, b"").unwrap();
    let report = s.run_all();
    assert!(!report.ok, "orders-check and billing fail");
    std::fs::remove_file(&gate).unwrap();
    s.daemon.refresh().unwrap();
    (s, gate)
}

#[test]
fn the_document_describes_exactly_the_routes_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            let public = op.get("security") == Some(&json!([]));
            let route = ROUTES
                .iter()
                .find(|r| r.0 == method && r.1 == path)
                .unwrap_or_else(|| panic!("{method} {path} is documented but not served"));
            assert_eq!(public, !route.3, "{method} {path}: security");
            let responses = op["responses"].as_object().unwrap();
            assert_eq!(
                responses.get("401")
                    == Some(&json!({"$ref": "#/components/responses/Unauthorized"})),
                route.3,
                "{method} {path}: a private route refuses without a token, a public one does not"
            );
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
            if path.contains("{name}") {
                assert_eq!(op["parameters"][0]["name"], "name", "{method} {path}");
            }
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.0.to_string(), r.1.to_string()))
        .collect();
    assert_eq!(documented, served);

    // Every reference resolves, and every object names all its fields (or says it is open).
    fn walk(doc: &Value, v: &Value, at: &str) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    assert!(
                        doc.pointer(r.trim_start_matches('#')).is_some(),
                        "{at}: $ref {r} does not resolve"
                    );
                }
                if o.get("type") == Some(&json!("object")) && o.contains_key("properties") {
                    assert_eq!(
                        o.get("additionalProperties"),
                        Some(&json!(false)),
                        "{at}: an object that does not close its fields"
                    );
                    let props = o["properties"].as_object().unwrap();
                    for req in o["required"].as_array().unwrap() {
                        assert!(props.contains_key(req.as_str().unwrap()), "{at}: {req}");
                    }
                }
                for (k, child) in o {
                    walk(doc, child, &format!("{at}/{k}"));
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    walk(&doc, &doc, "");
}

#[test]
fn every_response_of_every_route_matches_the_document() {
    let doc = document();
    let (s, gate) = rich_site();
    let check = |method: Method, template: &str, path: &str, auth: Auth, accept: Option<&str>| {
        let r = s.request(method.clone(), path, auth, accept);
        conforms(&doc, &method.as_str().to_lowercase(), template, &r);
        r
    };
    let bearer = Auth::Bearer(TOKEN);

    // A job running while everything is read: `running` and `lease` are filled in.
    let r = check(
        Method::POST,
        "/api/datasets/{name}/run",
        "/api/datasets/gated/run",
        bearer,
        None,
    );
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = check(
        Method::POST,
        "/api/datasets/{name}/run",
        "/api/datasets/gated/run",
        bearer,
        None,
    );
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = check(
        Method::POST,
        "/datasets/{name}/run",
        "/datasets/gated/run",
        bearer,
        None,
    );
    assert_eq!(r.status, StatusCode::CONFLICT);
    let jobs = check(Method::GET, "/api/jobs", "/api/jobs", bearer, None).json();
    assert!(!jobs["running"][0]["lease"].is_null(), "{jobs}");

    // An incident with a customer update and an internal note, so that its routes have one.
    let json_check = |method: Method, template: &str, path: &str, body: &str| {
        let r = s.request_json(method.clone(), path, bearer, body);
        conforms(&doc, &method.as_str().to_lowercase(), template, &r);
        r
    };
    let r = json_check(
        Method::POST,
        "/api/incidents",
        "/api/incidents",
        r#"{"title": "Backups delayed", "sev": 2, "message": "We are investigating."}"#,
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = json_check(
        Method::POST,
        "/api/incidents/{id}/updates",
        "/api/incidents/INC-1/updates",
        r#"{"message": "disk replaced", "internal": true}"#,
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = json_check(
        Method::POST,
        "/api/incidents/{id}/updates",
        "/api/incidents/INC-9/updates",
        r#"{"message": "nobody"}"#,
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    for (m, template, path, private) in ROUTES {
        if *m != "get" {
            continue;
        }
        let auth = if *private { bearer } else { Auth::None };
        let r = check(Method::GET, template, path, auth, None);
        assert_eq!(r.status, StatusCode::OK, "{path}");
        if *private {
            let r = check(Method::GET, template, path, Auth::None, None);
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            let r = check(Method::GET, template, path, Auth::None, Some("text/html"));
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    let names = s.get("/api/datasets").json();
    let names = names.as_array().unwrap();
    assert_eq!(names.len(), 5, "{names:?}");
    for n in names {
        let n = n.as_str().unwrap();
        let d = check(
            Method::GET,
            "/api/datasets/{name}",
            &format!("/api/datasets/{n}"),
            bearer,
            None,
        );
        assert_eq!(d.status, StatusCode::OK);
        check(
            Method::GET,
            "/datasets/{name}",
            &format!("/datasets/{n}"),
            bearer,
            None,
        );
    }
    // What the rich site was for: failures, nulls and open items did show up.
    let failing = s.get("/api/datasets/orders-check").json();
    assert_eq!(failing["status"]["verdict"], "breached");
    assert!(
        !failing["dataset"]["remediations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(failing["dataset"]["restore_tests"][0]["passed"], false);
    let billing = s.get("/api/datasets/billing").json();
    assert!(billing["status"]["facts"]["last_backup"].is_null());
    assert!(billing["dataset"]["exposure"][0]["seconds"].is_null());

    for (m, template, path) in [
        (Method::GET, "/api/datasets/{name}", "/api/datasets/nope"),
        (Method::GET, "/datasets/{name}", "/datasets/nope"),
        (
            Method::POST,
            "/api/datasets/{name}/run",
            "/api/datasets/nope/run",
        ),
        (Method::POST, "/datasets/{name}/run", "/datasets/nope/run"),
    ] {
        let r = check(m, template, path, bearer, None);
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    for query in [
        "?limit=5",
        "?dataset=app-db&kind=backup",
        "?after_seq=3&limit=2",
    ] {
        let r = check(
            Method::GET,
            "/api/events",
            &format!("/api/events{query}"),
            bearer,
            None,
        );
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = check(
        Method::GET,
        "/api/events",
        "/api/events?limit=x",
        bearer,
        None,
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Signing in and out.
    let login = |body: &str, ct: &str| {
        let r = s.send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(body.to_string()))
                .unwrap(),
        );
        conforms(&doc, "post", "/login", &r);
        r
    };
    assert_eq!(
        login(
            &format!("token={TOKEN}"),
            "application/x-www-form-urlencoded"
        )
        .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login("token=nope", "application/x-www-form-urlencoded").status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("{}", "application/json").status,
        StatusCode::BAD_REQUEST
    );
    let r = check(Method::POST, "/logout", "/logout", Auth::None, None);
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    std::fs::write(&gate, b"").unwrap();
    assert!(s.daemon.wait_for_jobs(Duration::from_secs(120)));
    let jobs = check(Method::GET, "/api/jobs", "/api/jobs", bearer, None).json();
    assert_eq!(jobs["recent"][0]["ok"], true, "{jobs}");

    // Stopping: runs are refused.
    s.daemon.drain();
    for (m, template, path) in [
        (
            Method::POST,
            "/api/datasets/{name}/run",
            "/api/datasets/app-db/run",
        ),
        (Method::POST, "/datasets/{name}/run", "/datasets/app-db/run"),
        (Method::GET, "/readyz", "/readyz"),
    ] {
        let r = check(m, template, path, bearer, None);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
}

#[test]
fn before_the_first_status_every_route_says_so_as_documented() {
    let doc = document();
    let (dir, policy) = site(|_, t| t);
    let s = daemon(
        dir,
        policy,
        &format!("{HOLDER}={TOKEN}\n"),
        chrono::Utc::now(),
    );
    for (m, template, path, private) in ROUTES {
        if *m != "get" {
            continue;
        }
        let auth = if *private {
            Auth::Bearer(TOKEN)
        } else {
            Auth::None
        };
        let r = s.request(Method::GET, path, auth, None);
        conforms(&doc, m, template, &r);
    }
}

/// A change to a real body that the document must not admit.
type Edit = fn(&mut Value);

#[test]
fn a_body_that_strays_from_the_document_fails() {
    let doc = document();
    let (s, _gate) = rich_site();
    let status = s.get("/api/status").json();
    let v = validator(
        &doc,
        "/paths/~1api~1status/get/responses/200/content/application~1json/schema",
    );
    assert!(v.is_valid(&status), "the real body is valid");

    let broken: Vec<(&str, Edit)> = vec![
        ("a dataset without its verdict", |s| {
            s["datasets"]["app-db"]
                .as_object_mut()
                .unwrap()
                .remove("verdict");
        }),
        ("no ledger", |s| {
            s.as_object_mut().unwrap().remove("ledger");
        }),
        ("an aspect without its reason", |s| {
            s["datasets"]["app-db"]["aspects"][0]
                .as_object_mut()
                .unwrap()
                .remove("reason");
        }),
        ("facts without the restore test", |s| {
            s["datasets"]["docs"]["facts"]
                .as_object_mut()
                .unwrap()
                .remove("last_restore_test");
        }),
        ("a field the document does not name", |s| {
            s["ledger"]["password"] = json!("x")
        }),
        ("a verdict that is not one", |s| {
            s["verdict"] = json!("fine")
        }),
        ("a time that is not one", |s| s["at"] = json!("yesterday")),
        ("a tier that is not one", |s| {
            s["datasets"]["docs"]["tier"] = json!("gold")
        }),
        ("a count below zero", |s| {
            s["datasets"]["docs"]["facts"]["snapshots"] = json!(-1)
        }),
        ("an agreement of no known state", |s| {
            s["ledger"]["copies"][0]["agreement"] = json!({"state": "fine"})
        }),
    ];
    for (what, edit) in broken {
        let mut b = status.clone();
        edit(&mut b);
        assert!(!v.is_valid(&b), "{what} passed the schema");
    }

    let v = validator(
        &doc,
        "/paths/~1api~1datasets~1{name}/get/responses/200/content/application~1json/schema",
    );
    let mut d = s.get("/api/datasets/orders-check").json();
    assert!(v.is_valid(&d));
    d["dataset"]["restore_tests"][0]["checks"][0]
        .as_object_mut()
        .unwrap()
        .remove("passed");
    assert!(!v.is_valid(&d), "a check without its result passed");

    let v = validator(&doc, "/components/schemas/Jobs");
    let mut jobs = s.get("/api/jobs").json();
    assert!(v.is_valid(&jobs));
    jobs.as_object_mut().unwrap().remove("draining");
    assert!(!v.is_valid(&jobs));
}
