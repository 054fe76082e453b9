//! `bulwark run` and `bulwark status` over a policy file: the embedded default ends all `met`;
//! status verdicts follow a clock we control over imported history; a restore test that fails
//! opens a remediation item that the next passing run closes; tampering with the ledger is found.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

/// A copy of the example configuration and its sample data in a fresh directory.
fn site(extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(examples.join("sample"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::copy(
        examples.join("demo.passphrase"),
        root.join("demo.passphrase"),
    )
    .unwrap();
    let text = std::fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/");
    let config = root.join("bulwark.toml");
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    Site {
        _dir: dir,
        root,
        config,
    }
}

impl Site {
    fn run(&self, args: &[&str]) -> Out {
        let mut c = bulwark();
        c.args(args).arg("-c").arg(&self.config);
        run(&mut c)
    }
    fn status(&self, at: Option<&str>) -> Value {
        let mut args = vec!["status", "--json"];
        if let Some(t) = at {
            args.extend(["--at", t]);
        }
        self.run(&args).json()
    }
    fn repo(&self, name: &str) -> PathBuf {
        self.root.join("state").join(name)
    }
}

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
