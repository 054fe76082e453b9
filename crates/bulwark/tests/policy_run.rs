//! `bulwark run` and `bulwark status` over a policy file: the embedded default ends all `met`;
//! status verdicts follow a clock we control over imported history; a restore test that fails
//! opens a remediation item that the next passing run closes; tampering with the ledger is found,
//! even when its hashes were recomputed; nothing is created that was not asked for; a tick with
//! nothing due only records that it looked; failures reach the notification channels; children
//! never see the passphrase.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn aspect<'a>(status: &'a Value, dataset: &str, name: &str) -> &'a Value {
    status["datasets"][dataset]["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} aspect for {dataset}: {status}"))
}

#[test]
fn the_embedded_default_runs_and_meets_every_commitment() {
    let s = site("");
    s.run(&["policy", "check"]).assert_ok();
    let out = s.run(&["run", "--json"]);
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["ok"], true, "{report}");
    let status = s.status(None);
    assert_eq!(status["verdict"], "met", "{status}");
    for d in ["app-db", "docs"] {
        assert_eq!(status["datasets"][d]["verdict"], "met", "{status}");
    }
    assert_eq!(aspect(&status, "app-db", "offsite")["verdict"], "met");
    s.run(&["ledger", "verify"]).assert_ok();
    // The ledger travels with the data: a snapshot of it sits in both repositories.
    for repo in ["primary", "offsite"] {
        let mut c = bulwark();
        c.args(["snapshots", "--json", "-r"])
            .arg(s.repo(repo))
            .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
        let snaps = run(&mut c).json();
        assert!(
            snaps
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["dataset"] == "bulwark-ledger"),
            "{repo}: {snaps}"
        );
    }
    // A second run adds no data for unchanged sources, and the chain still verifies.
    s.run(&["run"]).assert_ok();
    s.run(&["ledger", "verify"]).assert_ok();
}

#[test]
fn status_verdicts_follow_a_clock_over_imported_history() {
    let s = site("");
    s.run(&["run", "docs"]).assert_ok();
    let mut c = bulwark();
    c.args([
        "backup",
        "--json",
        "--dataset",
        "docs",
        "--time",
        "2030-01-10T00:00:00Z",
        "-r",
    ])
    .arg(s.repo("primary"))
    .arg(s.root.join("sample/files"))
    .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_ok();
    // docs runs every 6 hours against a 24-hour RPO.
    let rpo = |at: &str| {
        aspect(&s.status(Some(at)), "docs", "rpo")["verdict"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(rpo("2030-01-10T03:00:00Z"), "met");
    assert_eq!(
        rpo("2030-01-10T08:00:00Z"),
        "at_risk",
        "the 06:00 run produced nothing"
    );
    assert_eq!(rpo("2030-01-11T01:00:00Z"), "breached");
    let out = s.run(&["status", "--at", "2030-01-11T01:00:00Z"]);
    assert_eq!(
        out.code,
        1,
        "a breach is a non-zero exit: {}",
        out.describe()
    );
}

#[test]
fn a_failed_restore_test_opens_remediation_until_a_retest_passes() {
    let s = site("");
    s.run(&["run", "docs"]).assert_ok();
    // Damage every data pack of the primary; the off-site copy stays good.
    let primary = s.repo("primary");
    for pack in files_below(&primary.join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    let out = s.run(&["run", "docs", "--json"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    let items = s.run(&["remediation", "list", "--json"]).json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["dataset"], "docs");
    let status = s.status(None);
    assert_eq!(
        aspect(&status, "docs", "rto")["verdict"],
        "breached",
        "{status}"
    );

    // Heal the primary from the replica; the next run re-tests, passes, and closes the item.
    let mut c = bulwark();
    c.args(["repair", "packs", "-r"])
        .arg(&primary)
        .arg("--from")
        .arg(s.repo("offsite"))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_ok();
    s.run(&["run", "docs"]).assert_ok();
    let open = s.run(&["remediation", "list", "--json"]).json();
    assert_eq!(
        open,
        serde_json::json!([]),
        "the passing re-test closes the item"
    );
    let all = s.run(&["remediation", "list", "--all", "--json"]).json();
    assert!(all[0]["closed"].is_object(), "{all}");
    assert_eq!(aspect(&s.status(None), "docs", "rto")["verdict"], "met");
}

#[test]
fn tampering_with_the_ledger_is_found_and_located() {
    let s = site("");
    s.run(&["run", "docs"]).assert_ok();
    s.run(&["ledger", "verify"]).assert_ok();
    let db = s.root.join("state/bulwark-ledger.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Someone with write access removes the append-only guard and rewrites history.
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in triggers {
        conn.execute(&format!("DROP TRIGGER \"{t}\""), []).unwrap();
    }
    conn.execute(
        "UPDATE ledger_events SET ok = 1 - ok, summary = 'all fine' WHERE seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let out = s.run(&["ledger", "verify"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(
        out.stdout.contains("seq 2") || out.stdout.contains("2:"),
        "the report names the event: {}",
        out.describe()
    );
}

fn events(s: &Site) -> Vec<Value> {
    s.events()
}

fn snapshots_of(s: &Site, repo: &str) -> Vec<Value> {
    s.snapshots(repo)
}

#[test]
fn nothing_is_created_unless_asked_for() {
    let s = bare_site("");
    // Without the ledger's directory the run stops at once, saying which.
    let out = s.run(&["run"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());
    // A missing repository (an unmounted disk, a typo) is exit 10, not a fresh repository.
    std::fs::create_dir(s.root.join("state")).unwrap();
    let out = s.run(&["run", "--json"]);
    out.assert_code(10);
    assert!(!s.repo("primary").exists(), "{}", out.describe());
    assert!(!s.repo("offsite").exists());
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());
    let report = out.json();
    let step = &report["datasets"][0]["steps"][0];
    assert_eq!(step["failure"], "no_repository", "{report}");
    assert!(
        step["summary"]
            .as_str()
            .unwrap()
            .contains("no repository at"),
        "{report}"
    );
    // Reading commands create nothing either.
    std::fs::remove_file(s.root.join("state/bulwark-ledger.db")).unwrap();
    let out = s.run(&["status"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("no ledger"), "{}", out.describe());
    assert!(!s.root.join("state/bulwark-ledger.db").exists());
    assert!(!s.repo("primary").exists());
    // Explicitly asked for, run creates them.
    s.run(&["run", "--init"]).assert_ok();
    assert!(s.repo("primary").join("config").exists());
    assert_eq!(s.status(None)["verdict"], "met");
    // A typo in the policy file later is exit 10 again, and the mistyped path stays absent.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("url = \"state/primary\"", "url = \"state/primray\"");
    std::fs::write(&s.config, text).unwrap();
    s.run(&["run", "docs"]).assert_code(10);
    assert!(!s.repo("primray").exists());
}

#[test]
fn a_missing_ledger_is_an_error_and_comes_back_from_its_copies() {
    let s = site("");
    s.run(&["run", "docs"]).assert_ok();
    let before = events(&s).len();
    let db = s.root.join("state/bulwark-ledger.db");
    std::fs::remove_file(&db).unwrap();
    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(s.root.join(format!("state/bulwark-ledger.db{extra}")));
    }
    let out = s.run(&["ledger", "verify"]);
    out.assert_code(1).assert_one_error_line();
    assert!(!db.exists(), "verify must not create an empty ledger");
    s.run(&["status"]).assert_code(1);
    // A run refuses to start an empty ledger while the repositories hold a longer one.
    let out = s.run(&["run", "docs"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("ledger restore"), "{}", out.describe());
    let restored = s.run(&["ledger", "restore", "--json"]).json();
    assert!(restored["events_added"].as_u64().unwrap() > 0, "{restored}");
    s.run(&["ledger", "verify"]).assert_ok();
    s.run(&["run", "docs"]).assert_ok();
    assert!(events(&s).len() > before);
}

/// Rewrite every event from `from` on, as someone with write access to the database could:
/// drop the triggers, change an event, recompute every later hash and the head record.
fn rewrite_tail(db: &Path, from: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for t in [
        "ledger_events_append_only_update",
        "ledger_events_append_only_delete",
    ] {
        conn.execute(&format!("DROP TRIGGER IF EXISTS {t}"), [])
            .unwrap();
    }
    let mut prev: String = conn
        .query_row(
            "SELECT id FROM ledger_events WHERE seq = ?1",
            [from - 1],
            |r| r.get(0),
        )
        .unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, canonical FROM ledger_events WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([from], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!rows.is_empty());
    for (seq, canonical) in rows {
        let mut v: Value = serde_json::from_str(&canonical).unwrap();
        if seq == from {
            v["summary"] = "nothing to see here".into();
        }
        v["prev_hash"] = prev.clone().into();
        let text = bulwark_ledger::canonical_json(&v);
        let id = bulwark_ledger::hash_hex(text.as_bytes());
        conn.execute(
            "UPDATE ledger_events SET canonical = ?1, id = ?2, prev_hash = ?3, summary = ?4 WHERE seq = ?5",
            rusqlite::params![text, id, prev, v["summary"].as_str().unwrap(), seq],
        )
        .unwrap();
        prev = id;
    }
    conn.execute("UPDATE ledger_head SET hash = ?1", [prev])
        .unwrap();
}

#[test]
fn a_rewritten_ledger_tail_is_caught_by_the_copies_in_the_repositories() {
    let s = site("");
    s.run(&["run", "docs"]).assert_ok();
    s.run(&["run", "docs"]).assert_ok();
    let evs = events(&s);
    let target = evs.iter().find(|e| e["kind"] == "backup").unwrap()["seq"]
        .as_i64()
        .unwrap();
    rewrite_tail(&s.root.join("state/bulwark-ledger.db"), target);
    // The chain on its own is consistent again: that is the attack.
    let chain_only = events(&s);
    assert_eq!(chain_only.len(), evs.len());
    let out = s.run(&["ledger", "verify", "--json"]);
    out.assert_code(1);
    let report = out.json();
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "the chain itself verifies: {report}"
    );
    let diverged: Vec<&Value> = report["copies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["agreement"]["state"] == "diverged")
        .collect();
    assert_eq!(
        diverged.len(),
        2,
        "both repositories' copies disagree: {report}"
    );
    assert_eq!(diverged[0]["agreement"]["seq"], target, "{report}");
    let text = s.run(&["ledger", "verify"]);
    assert!(
        text.stdout.contains(&format!("event {target} differs")),
        "{}",
        text.describe()
    );
    let status = s.status(None);
    assert_eq!(status["ledger"]["verdict"], "breached", "{status}");
    assert_eq!(status["verdict"], "breached");
}

#[test]
fn a_tick_with_nothing_due_only_records_that_it_looked() {
    let s = site("");
    s.run(&["run", "--due"]).assert_ok();
    let before = events(&s);
    let ledger_copies = snapshots_of(&s, "primary")
        .iter()
        .filter(|x| x["dataset"] == "bulwark-ledger")
        .count();
    for _ in 0..3 {
        let out = s.run(&["run", "--due", "--json"]);
        out.assert_ok();
        assert_eq!(out.json()["nothing_due"], true, "{}", out.describe());
    }
    let after = events(&s);
    assert_eq!(after.len(), before.len() + 3, "one `run` event per tick");
    assert!(after[before.len()..].iter().all(|e| e["kind"] == "run"));
    assert_eq!(
        snapshots_of(&s, "primary")
            .iter()
            .filter(|x| x["dataset"] == "bulwark-ledger")
            .count(),
        ledger_copies,
        "no ledger copy when nothing ran"
    );
    assert_eq!(
        after.iter().filter(|e| e["kind"] == "prune").count(),
        before.iter().filter(|e| e["kind"] == "prune").count(),
        "prune waits for its own interval"
    );
}

#[test]
fn ledger_copies_are_kept_by_their_own_rules() {
    let s = site("");
    for _ in 0..6 {
        s.run(&["run", "docs"]).assert_ok();
    }
    let copies = snapshots_of(&s, "primary")
        .iter()
        .filter(|x| x["dataset"] == "bulwark-ledger")
        .count();
    // Six runs on one day: the three newest (the day's last among them), and the day's oldest,
    // which restic's rules keep while there are fewer days than `keep_daily` asks for.
    assert_eq!(copies, 4, "kept: the last 3, one a day, one a month");
}

#[test]
fn every_failed_step_reaches_the_channels_that_hear_it() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.txt");
    let only_tests = dir.path().join("only-tests.txt");
    let s = site(&format!(
        r#"
[datasets.broken]
kind = "command"
command = ["sh", "-c", "echo partial; exit 3"]
schedule = "daily at 03:00"

[notifications.ops]
command = ["sh", "-c", "cat >> {}"]

[notifications.testers]
command = ["sh", "-c", "cat >> {}"]
on = ["restore_test_failed"]
"#,
        heard.display(),
        only_tests.display()
    ));
    let out = s.run(&["run", "broken", "--json"]);
    out.assert_code(1);
    let report = out.json();
    assert_eq!(
        report["datasets"][0]["steps"][0]["failure"], "source",
        "{report}"
    );
    let text = std::fs::read_to_string(&heard).unwrap();
    assert!(
        text.contains("broken") && text.contains("backup failed"),
        "{text}"
    );
    assert!(
        !only_tests.exists(),
        "a channel hears only what its `on` names"
    );
    // No snapshot of a failed command: the stream's failure is the backup's.
    assert!(
        snapshots_of(&s, "primary")
            .iter()
            .all(|x| x["dataset"] != "broken")
    );
}

#[test]
fn a_channel_that_would_leak_is_refused_with_its_location() {
    // Webhooks deliver: `policy check` has nothing against one.
    let s = bare_site(
        r#"
[notifications.slack]
webhook = "https://hooks.example.com/services/T1"
format = "slack"
"#,
    );
    let report = s.run(&["policy", "check", "--json"]).json();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["ok"] == true),
        "{report}"
    );
    // Plain http to another host would carry the notice and its headers in the clear.
    let s = bare_site(
        r#"
[notifications.slack]
webhook = "http://hooks.example.com/services/T1"
"#,
    );
    let out = s.run(&["policy", "check"]);
    out.assert_code(1);
    let text = std::fs::read_to_string(&s.config).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("webhook = \"http://"))
        .unwrap()
        + 1;
    assert!(
        out.stderr.contains(&format!(
            "bulwark.toml:{line}:11: notifications.slack.webhook: plain http"
        )),
        "{}",
        out.describe()
    );
}

#[test]
fn children_never_see_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("notified-env.txt");
    let s = site(&format!(
        r#"
[datasets.environment]
kind = "command"
command = ["env"]
schedule = "daily at 03:00"

[datasets.failing]
kind = "command"
command = ["false"]
schedule = "daily at 03:00"

[notifications.ops]
command = ["sh", "-c", "env > {}"]
"#,
        seen.display()
    ));
    const SECRET: &str = "hunter2-never-in-a-child";
    let run_with_secret = |args: &[&str]| {
        let mut c = bulwark();
        c.args(args)
            .arg("-c")
            .arg(&s.config)
            .env("BULWARK_PASSWORD", SECRET);
        run(&mut c)
    };
    run_with_secret(&["run", "environment"]).assert_ok();
    run_with_secret(&["run", "failing"]).assert_code(1);
    let target = dir.path().join("restored");
    let id = snapshots_of(&s, "primary")
        .into_iter()
        .find(|x| x["dataset"] == "environment")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = bulwark();
    c.args(["restore", &id, "--target"])
        .arg(&target)
        .arg("-r")
        .arg(s.repo("primary"))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_ok();
    let backed_up = std::fs::read_to_string(target.join("environment.out")).unwrap();
    assert!(backed_up.contains("PATH="), "{backed_up}");
    let notified = std::fs::read_to_string(&seen).unwrap();
    for text in [&backed_up, &notified] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("BULWARK_"), "{text}");
    }
    // The same for `backup --stdin-from-command`, whose passphrase comes from BULWARK_PASSWORD.
    let repo = Repo::init(&[]);
    repo.run(&[
        "backup",
        "--stdin-name",
        "env.txt",
        "--stdin-from-command",
        "--",
        "env",
    ])
    .assert_ok();
    let out = repo.dir.path().join("out");
    repo.restore("latest", &out, &[]).assert_ok();
    let text = std::fs::read_to_string(out.join("env.txt")).unwrap();
    assert!(text.contains("PATH="), "{text}");
    assert!(!text.contains(&repo.password), "{text}");
    assert!(!text.contains("BULWARK_"), "{text}");
}

#[test]
fn a_missing_replica_is_named_as_itself() {
    let s = bare_site("");
    std::fs::create_dir(s.root.join("state")).unwrap();
    let mut c = bulwark();
    c.args(["init", "-r"])
        .arg(s.repo("primary"))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_ok();
    let out = s.run(&["run", "docs", "--json"]);
    out.assert_code(10);
    let report = out.json();
    let copy = report["datasets"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["step"] == "copy to offsite")
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    let summary = copy["summary"].as_str().unwrap();
    assert_eq!(copy["failure"], "no_repository", "{report}");
    assert!(summary.contains("repository 'offsite'"), "{summary}");
    assert!(summary.contains("state/offsite"), "{summary}");
    assert!(!summary.contains("state/primary"), "{summary}");
    assert!(!s.repo("offsite").exists());
    // The backup into the primary went ahead.
    assert_eq!(report["datasets"][0]["steps"][0]["ok"], true, "{report}");
    // `init --replica-of` a mistyped source leaves nothing behind.
    let mut c = bulwark();
    c.args(["init", "-r"])
        .arg(s.repo("offsite"))
        .arg("--replica-of")
        .arg(s.repo("primray"))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_code(10).assert_one_error_line();
    assert!(!s.repo("offsite").exists());
}

#[test]
fn the_policy_files_restore_test_budget_and_scratch_reach_the_run() {
    let s = site(
        r#"
[datasets.big]
kind = "files"
paths = ["sample/files"]
schedule = "daily at 03:00"
restore_test = { max_bytes = "1KiB", scratch = "scratch" }
"#,
    );
    let report = s.run(&["run", "big", "--json"]);
    report.assert_code(1);
    assert!(
        report.stdout.contains("does not exist"),
        "a missing scratch directory fails the test: {}",
        report.describe()
    );
    std::fs::create_dir(s.root.join("scratch")).unwrap();
    let out = s.run(&["run", "big", "--json"]);
    out.assert_ok();
    let steps = out.json()["datasets"][0]["steps"].clone();
    let test = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["step"] == "restore test")
        .unwrap()
        .clone();
    assert!(
        test["summary"].as_str().unwrap().contains("sampled"),
        "{test}"
    );
    let event = events(&s)
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "restore_test")
        .unwrap();
    assert!(
        event["details"]["sample"]["files_tested"].as_u64().unwrap()
            < event["details"]["sample"]["files_total"].as_u64().unwrap(),
        "{event}"
    );
}
