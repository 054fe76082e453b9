//! `bulwark run` tells a webhook: a failing backup posts its notice, with the secret header the
//! policy file reads from a file, to an HTTP server this test starts on loopback; the delivery
//! is a `notification` event; the secret is in no output and not in the ledger; each failure
//! is its own notice, delivered once.

mod common;

#[path = "../../bulwark-app/tests/support/http.rs"]
mod http;

use common::*;
use http::Hook;

const TOKEN: &str = "tok-e2e-5d0f-never-recorded";

#[test]
fn a_failing_backup_posts_to_the_webhook_once_per_failure() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(root.join("hook.token"), format!("{TOKEN}\n")).unwrap();
    let hook = Hook::statuses(&[]);
    let config = root.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[repositories.primary]
url = "primary"
password_file = "pass"

[datasets.broken]
kind = "command"
command = ["sh", "-c", "echo partial; exit 3"]
schedule = "daily at 03:00"

[notifications.hook]
webhook = "{}"
headers = {{ Authorization = {{ secret_file = "hook.token", prefix = "Bearer " }} }}
on = ["backup_failed"]
"#,
            hook.url("/bulwark")
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut c = bulwark();
        c.args(args).arg("-c").arg(&config);
        run(&mut c)
    };
    cli(&["init"]).assert_ok();
    let out = cli(&["run", "broken", "--json"]);
    out.assert_code(1);
    let report = out.json();
    assert_eq!(
        report["datasets"][0]["steps"][0]["step"], "backup",
        "{report}"
    );

    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/bulwark"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = r.json();
    assert_eq!(body["event"], "backup_failed");
    assert_eq!(body["dataset"], "broken");
    assert_eq!(body["repository"], "primary");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("bulwark: broken: backup failed:"),
        "{message}"
    );
    // The notice is about the failed backup's ledger event.
    let backup_event = report["datasets"][0]["steps"][0]["event"].as_str().unwrap();
    assert_eq!(body["about"], backup_event);
    assert_eq!(body["id"].as_str().unwrap().len(), 64);

    let events = cli(&["ledger", "events", "--json", "--dataset", "broken"]).json();
    let delivered: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notification")
        .collect();
    assert_eq!(delivered.len(), 1, "{events}");
    assert_eq!(delivered[0]["ok"], true);
    assert_eq!(delivered[0]["details"]["channel"], "hook");
    assert_eq!(delivered[0]["details"]["http_status"], 200);

    // The next failure is another notice.
    cli(&["run", "broken"]).assert_code(1);
    assert_eq!(hook.requests().len(), 2);
    assert_ne!(hook.requests()[1].json()["id"], body["id"]);
    cli(&["ledger", "verify"]).assert_ok();

    for text in [out.stdout.as_str(), out.stderr.as_str()] {
        assert!(!text.contains(TOKEN), "{text}");
    }
    let ledger = std::fs::read(root.join("bulwark-ledger.sqlite")).unwrap();
    assert!(
        !ledger.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the token is in the ledger file"
    );
}
