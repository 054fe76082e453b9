//! The dashboard and the status page in a real browser: a daemon serving the embedded default
//! listens on loopback, headless Chromium driven by Playwright (`dashboard.mjs` beside this file)
//! loads the overview, every dataset's page, the ledger, the jobs and the public status page,
//! and what it saw must equal `status --json` of the same daemon, dataset by dataset, with no
//! console error, no failed request and nothing fetched from elsewhere. Screenshots go to
//! `target/browser-test/*.png`.
//!
//! Needs `chromium` and `node`, and `npm install --prefix target/browser-test playwright-core@1`
//! (`.ci/run` does all three). Without them the test says what is missing and passes, unless
//! `BULWARK_REQUIRE_BROWSER=1`.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use bulwark_policy::compliance::Verdict;
use bulwark_server::http::{self, Listen};
use serde_json::Value;

use common::{TOKEN, embedded_default};

fn browser_dir() -> PathBuf {
    std::env::var_os("BULWARK_BROWSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-test"))
}

/// What is missing to run the test, if anything.
fn missing(chromium: &Path, dir: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node (apt-get install nodejs npm)".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "no playwright-core in {} (npm install --prefix {} playwright-core@1)",
            dir.display(),
            dir.display()
        ));
    }
    None
}

#[test]
fn the_dashboard_and_the_status_page_show_what_status_says() {
    let chromium = std::env::var_os("BULWARK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let dir = browser_dir();
    if let Some(why) = missing(&chromium, &dir) {
        assert!(
            std::env::var("BULWARK_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "BULWARK_REQUIRE_BROWSER=1 but {why}"
        );
        eprintln!("skipping the browser test: {why}");
        return;
    }

    let s = embedded_default();
    let components: Vec<String> = s
        .daemon
        .workspace()
        .config()
        .components
        .keys()
        .cloned()
        .collect();
    assert_eq!(components, ["Document storage", "Spark Cloud"]);

    // Serve on a real socket until the test is done.
    let (bound_tx, bound_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = s.state.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(http::serve(
            state,
            Listen {
                addr: "127.0.0.1:0".parse().unwrap(),
                tls: None,
            },
            move |addr| bound_tx.send(addr).unwrap(),
            async move {
                let _ = stop_rx.await;
            },
        ))
    });
    let addr = bound_rx.recv().unwrap();

    // Some hours after the run one dataset is met and one at risk (docs, every 6h, once one of
    // its runs is over an hour late; which hour that is depends on the time of day the test
    // runs, so it is found, not assumed); after thirty both are breached. The clock is
    // injected, not slept, and the page has every verdict to get wrong.
    let start = s.daemon.view().unwrap().at;
    let mixed = (1..=23)
        .find(|h| {
            let at = start + chrono::Duration::hours(*h);
            let report = bulwark_app::status::status(&s.daemon.workspace(), at).unwrap();
            let v: std::collections::BTreeSet<Verdict> =
                report.datasets.values().map(|d| d.status.verdict).collect();
            v.contains(&Verdict::Met) && v.contains(&Verdict::AtRisk)
        })
        .expect("an hour of the day when one dataset is met and one at risk");
    let mut verdicts = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for (moment, hours) in [("mixed", mixed), ("30h-later", 30)] {
        s.clock.set(start + chrono::Duration::hours(hours));
        let view = s.daemon.refresh().unwrap();
        // What `bulwark status --json --at` prints for the same moment.
        let expected = serde_json::to_value(
            bulwark_app::status::status(&s.daemon.workspace(), view.at).unwrap(),
        )
        .unwrap();
        let out = Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs"))
            .env("BULWARK_URL", format!("http://{addr}/"))
            .env("BULWARK_TOKEN", TOKEN)
            .env("BULWARK_BROWSER_DIR", &dir)
            .env("BULWARK_CHROMIUM", &chromium)
            .env("BULWARK_SHOTS", moment)
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{moment}: the browser script failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
            break;
        }
        let seen: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        for shot in seen["screenshots"].as_array().unwrap() {
            eprintln!("screenshot: {}", shot.as_str().unwrap());
        }
        for d in expected["datasets"].as_object().unwrap().values() {
            verdicts.insert(d["verdict"].as_str().unwrap().to_string());
        }
        judge(moment, &seen, &expected, &view);
    }
    let _ = stop_tx.send(());
    server.join().unwrap().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        verdicts.into_iter().collect::<Vec<_>>(),
        ["at_risk", "breached", "met"],
        "every verdict was on the page at some moment"
    );
}

/// What the browser saw at `moment` against `status --json` and the daemon's view.
fn judge(moment: &str, seen: &Value, expected: &Value, view: &bulwark_server::view::View) {
    for (page, code) in seen["status"].as_object().unwrap() {
        assert_eq!(code, 200, "{moment}: {page}");
    }
    for list in ["consoleErrors", "failedRequests", "foreignRequests"] {
        assert_eq!(seen[list], Value::Array(vec![]), "{moment}: {list}");
    }

    // The overview, dataset by dataset and commitment by commitment, is `status --json`.
    let rows = seen["overview"]["rows"].as_object().unwrap();
    let datasets = expected["datasets"].as_object().unwrap();
    assert_eq!(
        rows.len(),
        datasets.len() + 1,
        "every dataset and the ledger"
    );
    for (name, d) in datasets {
        let row = &rows[name];
        assert_eq!(row["verdict"], d["verdict"], "{moment}: {name}");
        assert_eq!(row["reason"], d["reason"], "{moment}: {name}");
        let aspects = d["aspects"].as_array().unwrap();
        assert_eq!(row["aspects"].as_object().unwrap().len(), aspects.len());
        for a in aspects {
            let n = a["name"].as_str().unwrap();
            assert_eq!(row["aspects"][n], a["verdict"], "{moment}: {name} {n}");
        }
        assert_eq!(
            seen["datasets"][name]["verdict"], d["verdict"],
            "{moment}: {name}'s page"
        );
        assert!(seen["datasets"][name]["charts"].as_u64().unwrap() >= 3);
    }
    assert_eq!(rows["ledger"]["verdict"], expected["ledger"]["verdict"]);
    assert_eq!(seen["overview"]["overall"], expected["verdict"], "{moment}");

    // The public page names every component, in the state the daemon judged.
    let shown = seen["components"].as_object().unwrap();
    assert_eq!(shown.len(), view.status_page.components.len());
    for c in &view.status_page.components {
        let state = serde_json::to_value(c.state).unwrap();
        assert_eq!(shown[&c.name], state, "{moment}: {}", c.name);
    }
}
