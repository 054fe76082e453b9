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

#[test]
fn a_primary_unavailable_for_repeated_backups_fails_over_on_its_own() {
    let heard = tempfile::NamedTempFile::new().unwrap();
    let s = site(&format!(
        "[notifications.ops]\ncommand = [\"sh\", \"-c\", \"cat >> {}\"]\non = [\"failed_over\"]\n",
        heard.path().display()
    ));
    let text = std::fs::read_to_string(&s.config).unwrap();
    let on_primary = "region = \"local-a\"\n";
    assert!(text.contains(on_primary));
    // Only a primary with a replica can fail over: on a replica it is refused, with its place.
    let on_replica = text.replacen(
        "[repositories.offsite]\n",
        "[repositories.offsite]\nauto_failover = true\n",
        1,
    );
    std::fs::write(&s.config, &on_replica).unwrap();
    let out = s.run(&["policy", "check"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("auto_failover: a replica does not fail over"),
        "{}",
        out.describe()
    );
    std::fs::write(
        &s.config,
        text.replacen(
            on_primary,
            &format!("{on_primary}auto_failover = true\nauto_failover_after = 2\n"),
            1,
        ),
    )
    .unwrap();
    s.run(&["run", "docs"]).assert_ok();
    let before = snapshot_ids(&s, "offsite", &["docs"]);
    std::fs::rename(s.repo("primary"), s.root.join("primary-gone")).unwrap();

    // One unavailable backup is not enough...
    s.run(&["run", "docs"]).assert_code(10);
    assert_eq!(s.status(None)["failovers"], serde_json::json!([]));
    // ...the second in a row fails over and backs up into the replica in the same run.
    let out = s.run(&["run", "docs", "--json"]);
    let report = out.json();
    let steps: Vec<(String, bool)> = report["datasets"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                format!(
                    "{} {}",
                    st["step"].as_str().unwrap(),
                    st["repository"].as_str().unwrap_or("")
                ),
                st["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("open primary primary".to_string(), false),
            ("failover to offsite offsite".to_string(), true),
            ("backup offsite".to_string(), true),
        ],
        "{report}"
    );
    assert_eq!(report["failed_over"], serde_json::json!(["primary"]));
    assert_eq!(
        snapshot_ids(&s, "offsite", &["docs"]).len(),
        before.len() + 1
    );
    let status = s.status(None);
    assert_eq!(status["failovers"][0]["active"], "offsite", "{status}");
    assert!(
        status["failovers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("2 backups in a row"),
        "{status}"
    );
    let told = std::fs::read_to_string(heard.path()).unwrap();
    assert!(
        told.contains("now go to 'offsite'"),
        "who hears failed_over is told: {told}"
    );
    // From then on runs write to the replica, and nothing fails over twice.
    s.run(&["run", "docs"]).assert_ok();
    assert_eq!(
        snapshot_ids(&s, "offsite", &["docs"]).len(),
        before.len() + 2
    );
    let events = s.run(&["ledger", "events", "--json"]);
    events.assert_ok();
    let kinds: Vec<String> = events
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| match v {
            Value::Array(a) => a,
            one => vec![one],
        })
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect();
    assert!(kinds.iter().any(|k| k == "backup"), "{}", events.describe());
    assert_eq!(
        kinds.iter().filter(|k| *k == "failover").count(),
        1,
        "{kinds:?}"
    );
}
