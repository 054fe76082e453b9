//! Recovery from nothing and key custody: the key of the off-site repository held as five
//! recovery shares, any three of which open it; with the primary repository, the ledger, the
//! policy file and every passphrase gone, `recover` brings the plan, its evidence and every
//! dataset back from the off-site copy and three shares alone.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const HOLDERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// `key split` on the site's off-site repository: five shares, three needed.
fn split_offsite_key(s: &Site, out: &Path) -> Value {
    let mut c = bulwark();
    c.args(["key", "split", "--threshold", "3", "--json", "-r"])
        .arg(s.repo("offsite"))
        .arg("--out")
        .arg(out)
        .env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    for h in HOLDERS {
        c.args(["--holder", h]);
    }
    let out = run(&mut c);
    out.assert_ok();
    out.json()
}

fn share(dir: &Path, holder: &str) -> PathBuf {
    dir.join(format!("{holder}.share"))
}

fn recover_cmd(from: &Path, to: &Path, shares: &[PathBuf]) -> std::process::Command {
    let mut c = bulwark();
    c.args(["recover", "--json", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to);
    for s in shares {
        c.arg("--share").arg(s);
    }
    c
}

#[test]
fn three_of_five_shares_and_the_off_site_copy_bring_everything_back() {
    let s = site("");
    let custody = tempfile::tempdir().unwrap();
    let shares_dir = custody.path().join("shares");
    let split = split_offsite_key(&s, &shares_dir);
    assert_eq!(split["threshold"], 3);
    for h in HOLDERS {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(share(&shares_dir, h))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{h}'s share is owner-only");
    }
    s.run(&["run", "app-db", "docs"]).assert_ok();
    let head_before = s.run(&["ledger", "verify", "--json"]).json();
    let policy_before = std::fs::read(&s.config).unwrap();

    // Fewer than three shares never make a key, and say how many are missing.
    let two = [share(&shares_dir, "alice"), share(&shares_dir, "bob")];
    let mut c = bulwark();
    c.args(["key", "recover", "--out"])
        .arg(custody.path().join("key"))
        .args(two.iter().flat_map(|p| [Path::new("--share"), p.as_path()]));
    let out = run(&mut c);
    out.assert_code(12).assert_one_error_line();
    assert!(
        out.stderr.contains("3 shares are needed and 2"),
        "{}",
        out.describe()
    );
    assert!(!custody.path().join("key").exists());
    // A share whose content was changed is named, not combined into a wrong key.
    let tampered = custody.path().join("tampered.share");
    let text = std::fs::read_to_string(share(&shares_dir, "carol")).unwrap();
    std::fs::write(
        &tampered,
        text.replacen("\"holder\": \"carol\"", "\"holder\": \"mallory\"", 1),
    )
    .unwrap();
    let mut with_tampered = two.to_vec();
    with_tampered.push(tampered);
    let mut c = bulwark();
    c.args(["key", "recover", "--out"])
        .arg(custody.path().join("key"));
    for p in &with_tampered {
        c.arg("--share").arg(p);
    }
    let out = run(&mut c);
    out.assert_code(12);
    assert!(
        out.stderr.contains("tampered.share") && out.stderr.contains("signature"),
        "{}",
        out.describe()
    );

    // The primary region is lost: its repository, the ledger, the policy file, the passphrase.
    std::fs::remove_dir_all(s.repo("primary")).unwrap();
    for entry in std::fs::read_dir(s.root.join("state")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("bulwark-ledger")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::remove_file(&s.config).unwrap();
    std::fs::remove_file(s.root.join("demo.passphrase")).unwrap();

    let three = [
        share(&shares_dir, "bob"),
        share(&shares_dir, "dave"),
        share(&shares_dir, "erin"),
    ];
    let out = run(&mut recover_cmd(&s.repo("offsite"), &s.root, &three));
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["repository"], "offsite", "{report}");
    assert_eq!(
        std::fs::read(&s.config).unwrap(),
        policy_before,
        "the policy file comes back byte for byte"
    );
    // The ledger comes back up to the head the off-site copy holds (the events that recorded the
    // copy itself come after it, by construction).
    let offsite_copy = head_before["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["repository"] == "offsite")
        .unwrap();
    assert_eq!(
        report["head"], offsite_copy["head"],
        "{report} {head_before}"
    );
    assert_eq!(report["events_restored"], report["head"]["seq"]);
    let drill = &report["drill"];
    assert_eq!(drill["passed"], true, "{drill}");
    let datasets: Vec<&str> = drill["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["passed"], true, "{d}");
            assert_eq!(d["repository"], "offsite");
            d["dataset"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        datasets,
        ["app-db", "docs"],
        "every dataset, not only the critical"
    );

    // The recovered ledger verifies and holds the recovery and its drill after the old events.
    s.run(&["ledger", "verify"]).assert_ok();
    let events = s.events();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let n = kinds.len();
    assert_eq!(&kinds[n - 2..], ["recovery", "drill"], "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == "backup").count() >= 2);

    // Recovery never overwrites a policy file that is there.
    let out = run(&mut recover_cmd(&s.repo("offsite"), &s.root, &three));
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("never overwrites"),
        "{}",
        out.describe()
    );
}

#[test]
fn recovery_names_the_repository_when_the_layout_changed() {
    let s = site("");
    s.run(&["run", "app-db"]).assert_ok();
    let fresh = tempfile::tempdir().unwrap();
    let to = fresh.path().join("dr");
    let with_password = |c: &mut std::process::Command| {
        c.env("BULWARK_PASSWORD_FILE", s.root.join("demo.passphrase"));
    };
    // Moved: the off-site repository is not where the policy file says, relative to `to`.
    let mut c = recover_cmd(&s.repo("offsite"), &to, &[]);
    with_password(&mut c);
    let out = run(&mut c);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("name it"), "{}", out.describe());
    assert!(
        !to.join("bulwark.toml").exists(),
        "a refusal writes nothing"
    );

    let mut c = recover_cmd(&s.repo("offsite"), &to, &[]);
    c.args(["--as", "offsite", "app-db"]);
    with_password(&mut c);
    let out = run(&mut c);
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["drill"]["datasets"].as_array().unwrap().len(), 1);
    assert!(to.join("bulwark.toml").exists());

    // A wrong passphrase is the documented exit code, and nothing is written.
    let other = fresh.path().join("other");
    let wrong = fresh.path().join("wrong.passphrase");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let mut c = recover_cmd(&s.repo("offsite"), &other, &[]);
    c.env("BULWARK_PASSWORD_FILE", &wrong);
    let out = run(&mut c);
    out.assert_code(12).assert_one_error_line();
    assert!(!other.join("bulwark.toml").exists());
}
