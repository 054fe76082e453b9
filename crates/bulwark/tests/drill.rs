//! Disaster-recovery drills from the off-site replica alone: they pass with the primary gone,
//! restore into the targets the policy file names for the secondary region, are judged in
//! `status`, and a failed drill opens a remediation item that the next passing drill closes.

mod common;

use common::*;
use serde_json::Value;

fn aspect<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["platform"]["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no platform aspect {name}: {status}"))
}

#[test]
fn a_drill_restores_from_the_off_site_copy_alone() {
    let s = site("[drill.targets.docs]\ndirectory = \"dr/docs\"\n");
    s.run(&["run", "app-db", "docs"]).assert_ok();
    // The primary region is gone: its repository is nowhere to be found.
    let primary = s.repo("primary");
    std::fs::rename(&primary, s.root.join("primary-gone")).unwrap();
    let out = s.run(&["drill", "--all", "--json"]);
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["rto_met"], true);
    assert!(report["wall_s"].as_f64().unwrap() > 0.0);
    let by_name = |n: &str| {
        report["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == n)
            .unwrap()
            .clone()
    };
    let app = by_name("app-db");
    assert_eq!(app["repository"], "offsite", "{app}");
    assert_eq!(app["target"], "scratch");
    assert_eq!(app["rpo_met"], true);
    assert!(app["rpo_achieved_s"].as_f64().unwrap() >= 0.0);
    assert!(
        app["checks"].as_array().unwrap().iter().any(|c| c["name"]
            == "check-sql: SELECT count(*) > 0 FROM orders"
            && c["passed"] == true),
        "{app}"
    );
    let docs = by_name("docs");
    assert!(
        docs["target"].as_str().unwrap().contains("dr/docs"),
        "{docs}"
    );
    assert!(s.root.join("dr/docs").exists());
    assert!(
        !primary.exists(),
        "the drill never touched the primary's location"
    );
    // A drill target is never overwritten.
    let again = s.run(&["drill", "docs", "--json"]).json();
    assert_eq!(again["passed"], false);
    assert!(
        again["datasets"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not empty"),
        "{again}"
    );
    std::fs::remove_dir_all(s.root.join("dr")).unwrap();

    std::fs::rename(s.root.join("primary-gone"), &primary).unwrap();
    let status = s.status(None);
    // The last drill (just now) failed: breached until one passes.
    assert_eq!(aspect(&status, "drill")["verdict"], "breached", "{status}");
    let items = s.run(&["remediation", "list", "--json"]).json();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["dataset"] == "drill"),
        "{items}"
    );
    s.run(&["drill", "--json"]).assert_ok();
    let status = s.status(None);
    assert_eq!(aspect(&status, "drill")["verdict"], "met", "{status}");
    assert_eq!(
        aspect(&status, "rto_projection")["verdict"],
        "met",
        "{status}"
    );
    let items = s.run(&["remediation", "list", "--json"]).json();
    assert!(
        !items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["dataset"] == "drill"),
        "the passing drill closed the item: {items}"
    );
    let drills: Vec<Value> = s
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "drill")
        .collect();
    assert_eq!(drills.len(), 3);
    assert!(
        drills[2]["details"]["datasets"][0]["duration_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn a_failed_drill_is_drilled_again_by_every_run_until_one_passes() {
    let s = site("");
    s.run(&["run"]).assert_ok();
    let drills = |s: &Site| s.events().iter().filter(|e| e["kind"] == "drill").count();
    assert_eq!(drills(&s), 1, "the first run drills: none was on record");
    s.run(&["run", "--due"]).assert_ok();
    assert_eq!(drills(&s), 1, "a passed drill is not due again for a year");
    // Damage the off-site copy: the next drill fails, and every run drills again.
    for pack in files_below(&s.repo("offsite").join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(&pack, bytes).unwrap();
    }
    s.run(&["drill"]).assert_code(1);
    let out = s.run(&["run", "--due", "--json"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("\"step\":\"drill\""),
        "{}",
        out.describe()
    );
    assert_eq!(drills(&s), 3);
    // Heal the replica from the primary: the next run's drill passes and closes the item.
    let mut c = bulwark();
    c.args(["repair", "packs", "-r"])
        .arg(s.repo("offsite"))
        .arg("--from")
        .arg(s.repo("primary"))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    run(&mut c).assert_ok();
    s.run(&["run", "--due"]).assert_ok();
    assert_eq!(drills(&s), 4);
    let status = s.status(None);
    assert_eq!(aspect(&status, "drill")["verdict"], "met", "{status}");
}

fn snapshot_ids(s: &Site, repo: &str, datasets: &[&str]) -> std::collections::BTreeSet<String> {
    s.snapshots(repo)
        .into_iter()
        .filter(|x| datasets.iter().any(|d| x["dataset"] == *d))
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

fn check_clean(s: &Site, repo: &str) {
    let mut c = bulwark();
    c.args(["check", "--read-data", "--json", "-r"])
        .arg(s.repo(repo))
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    let out = run(&mut c);
    out.assert_ok();
    assert_eq!(out.json()["ok"], true, "{repo}: {}", out.describe());
}

#[test]
fn failover_while_the_primary_is_down_and_failback_when_it_returns() {
    let s = site("");
    s.run(&["run", "app-db", "docs"]).assert_ok();
    let before = snapshot_ids(&s, "primary", &["app-db", "docs"]);
    let primary = s.repo("primary");
    std::fs::rename(&primary, s.root.join("primary-gone")).unwrap();
    // With the primary gone a run fails for want of its repository...
    s.run(&["run", "docs"]).assert_code(10);
    // ...until backups fail over to the off-site replica.
    s.run(&["failover", "--to", "primary"]).assert_code(1);
    let out = s.run(&[
        "failover",
        "--to",
        "offsite",
        "--reason",
        "eu-west-1 is down",
        "--json",
    ]);
    out.assert_ok();
    assert_eq!(out.json()["primary"], "primary");
    s.run(&["failover", "--to", "offsite"]).assert_code(1);
    let out = s.run(&["run", "app-db", "docs", "--json"]);
    out.assert_ok();
    let during = snapshot_ids(&s, "offsite", &["app-db", "docs"]);
    assert_eq!(
        during.len(),
        before.len() + 2,
        "the failed-over run backed up into the replica"
    );
    let status = s.status(None);
    assert_eq!(status["failovers"][0]["active"], "offsite", "{status}");
    assert_eq!(
        status["datasets"]["app-db"]["aspects"][0]["verdict"], "met",
        "{status}"
    );
    // The primary returns; failback copies the failover's snapshots back, verifies, switches.
    std::fs::rename(s.root.join("primary-gone"), &primary).unwrap();
    let out = s.run(&["failback", "--json"]);
    out.assert_ok();
    let fb = out.json();
    let copied: std::collections::BTreeSet<String> = fb["snapshots_copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let made_during: std::collections::BTreeSet<String> =
        during.difference(&before).cloned().collect();
    assert!(made_during.is_subset(&copied), "{fb}");
    assert_eq!(copied.len(), 3, "two backups and the ledger's copy: {fb}");
    assert_eq!(
        snapshot_ids(&s, "primary", &["app-db", "docs"]),
        snapshot_ids(&s, "offsite", &["app-db", "docs"]),
        "both hold every snapshot"
    );
    check_clean(&s, "primary");
    check_clean(&s, "offsite");
    let status = s.status(None);
    assert_eq!(status["failovers"], serde_json::json!([]), "{status}");
    s.run(&["failback"]).assert_code(1);
    // Backups go to the primary again, and copies to the replica resume.
    s.run(&["run", "docs"]).assert_ok();
    assert_eq!(snapshot_ids(&s, "primary", &["docs"]).len(), 3);
    assert_eq!(snapshot_ids(&s, "offsite", &["docs"]).len(), 3);
}
