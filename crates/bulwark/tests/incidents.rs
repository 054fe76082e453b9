//! `bulwark incident`, `postmortem`, `roles` and `review` over the embedded default: JSON out,
//! back-dated steps with `--at`, refusals as exit 2 with one error line and a hint, `roles` and
//! `review diff` exiting 1 when there is something to act on, and `status` judging the new
//! commitments at the instant asked.

mod common;

use common::*;
use serde_json::Value;

fn platform<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["platform"]["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} aspect: {status}"))
}

#[test]
fn an_incident_from_open_to_post_mortem_through_the_cli() {
    let s = site("");
    let out = s.run(&[
        "incident",
        "open",
        "--json",
        "--title",
        "Backups of app-db are delayed",
        "--sev",
        "2",
        "--message",
        "We are investigating.",
        "--at",
        "2026-11-30T09:00:00Z",
    ]);
    out.assert_ok();
    let opened = out.json();
    assert_eq!(opened["incident"]["id"], "INC-1", "{opened}");
    assert_eq!(opened["incident"]["owner"], "incident-commander");
    s.run(&[
        "incident",
        "update",
        "INC-1",
        "--internal",
        "--message",
        "vendor ticket 88231",
        "--at",
        "2026-11-30T09:30:00Z",
    ])
    .assert_ok();
    // No customer update since 09:00: late at 11:05.
    let st = s.status(Some("2026-11-30T11:05:00Z"));
    let a = platform(&st, "incident_updates");
    assert_eq!(a["verdict"], "breached", "{a}");
    let list = s.run(&["incident", "list", "--at", "2026-11-30T11:05:00Z"]);
    list.assert_ok();
    assert!(
        list.stdout
            .contains("customer update overdue since 2026-11-30 11:00 UTC"),
        "{}",
        list.describe()
    );
    s.run(&[
        "incident",
        "update",
        "1",
        "--state",
        "identified",
        "--message",
        "Storage is degraded.",
        "--eta",
        "2026-11-30T15:00:00Z",
        "--at",
        "2026-11-30T11:10:00Z",
    ])
    .assert_ok();
    let shown = s.run(&["incident", "show", "INC-1", "--json"]).json();
    let steps = shown["timeline"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[1]["internal"], true);
    assert_eq!(shown["state"], "identified");
    assert_eq!(shown["eta"], "2026-11-30T15:00:00Z");
    s.run(&[
        "incident",
        "resolve",
        "INC-1",
        "--message",
        "Fixed.",
        "--at",
        "2026-11-30T12:00:00Z",
    ])
    .assert_ok();
    // Refusals: exit 2, one line, a hint.
    for args in [
        &[
            "incident",
            "update",
            "INC-1",
            "--message",
            "late",
            "--at",
            "2026-11-30T13:00:00Z",
        ][..],
        &["incident", "show", "INC-7"][..],
        &["incident", "open", "--title", "x", "--sev", "9"][..],
        &[
            "incident", "open", "--title", "x", "--sev", "2", "--owner", "carol",
        ][..],
        &[
            "incident", "open", "--title", "x", "--sev", "2", "--state", "fixed",
        ][..],
        &["postmortem", "submit", "INC-1"][..],
    ] {
        let out = s.run(args);
        out.assert_code(2).assert_one_error_line();
        assert!(out.stderr.contains("hint:"), "{}", out.describe());
    }
    // The post-mortem: 10 business days after Monday 30 November (London, GB-ENG holidays).
    let pm = s.root.join("pm.md");
    std::fs::write(&pm, "# INC-1\n").unwrap();
    let out = s.run(&[
        "postmortem",
        "submit",
        "INC-1",
        "--json",
        "--file",
        pm.to_str().unwrap(),
        "--at",
        "2026-12-10T10:00:00Z",
    ]);
    out.assert_ok();
    let sub = out.json();
    assert_eq!(sub["deadline"], "2026-12-15T00:00:00Z", "{sub}");
    assert!(sub["late_by_s"].is_null());
    let stored = sub["reference"]["stored"].as_str().unwrap();
    assert_eq!(std::fs::read(stored).unwrap(), b"# INC-1\n");
    let list = s.run(&["postmortem", "list", "--json"]).json();
    assert_eq!(list[0]["state"], "submitted", "{list}");
    s.run(&["ledger", "verify"]).assert_ok();
}

#[test]
fn roles_and_reviews_through_the_cli() {
    let s = site("");
    let out = s.run(&["roles", "--json"]);
    out.assert_ok();
    let r = out.json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["roles"].as_array().unwrap().len(), 2);
    // A role whose alternate is its owner fails `roles` and `policy check`.
    let bad = site("[roles.dba]\nowner = \"frank\"\nalternates = [\"frank\"]\n");
    let out = bad.run(&["roles"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("frank is listed as an alternate of their own role"),
        "{}",
        out.describe()
    );
    bad.run(&["policy", "check"]).assert_code(1);

    let out = s.run(&["review", "diff", "--json"]);
    out.assert_code(1);
    assert!(
        !out.json()["added"].as_array().unwrap().is_empty(),
        "no review yet: all is new"
    );
    s.run(&[
        "review",
        "record",
        "--by",
        "carol, dave",
        "--at",
        "2026-11-30T10:00:00Z",
    ])
    .assert_ok();
    s.run(&["review", "diff"]).assert_ok();
    s.run(&["review", "record", "--by", " "])
        .assert_code(2)
        .assert_one_error_line();
    let l = s
        .run(&["review", "list", "--json", "--at", "2026-12-01T00:00:00Z"])
        .json();
    assert_eq!(l["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(l["review"]["verdict"], "met", "{l}");
    assert_eq!(l["due"][0]["kind"], "yearly");
    assert_eq!(l["due"][0]["due"], "2027-11-30T10:00:00Z");
    // The topology changes: the offsite replica moves region.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("\"local-b\"", "\"local-c\"");
    std::fs::write(&s.config, text).unwrap();
    let out = s.run(&["review", "diff"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("+ repository offsite region=local-c replica_of=primary"),
        "{}",
        out.describe()
    );
}
