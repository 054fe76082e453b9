//! `bulwark evidence`: keygen makes an owner-only key and a public key; a pack made after a run
//! verifies (with the live ledger too), also as PDF where Chromium is installed; an edited file
//! or another key fails verify with exit 1 naming it; restore-tests summarises the latest test
//! per dataset; bad input is one error line with the documented exit code.

mod common;

use std::os::unix::fs::PermissionsExt;

use chrono::{Duration, Utc};
use common::*;

#[test]
fn keygen_pack_verify_and_restore_tests_from_the_command_line() {
    let s = site("\n[evidence]\nsigning_key = \"evidence.key\"\n");
    let key = s.root.join("evidence.key");
    let mut c = bulwark();
    c.args(["evidence", "keygen", "--out"]).arg(&key);
    run(&mut c).assert_ok();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = s.root.join("evidence.key.pub");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let mut again = bulwark();
    again.args(["evidence", "keygen", "--out"]).arg(&key);
    run(&mut again).assert_code(1).assert_one_error_line();

    s.run(&["run"]).assert_ok();
    s.run(&["drill"]).assert_ok();
    // The datasets are new: a period starting long before their first backup would breach.
    let from = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let tar = s.root.join("pack.tar");
    let tar_arg = tar.display().to_string();
    let made = s.run(&[
        "evidence", "--from", &from, "--to", &to, "--out", &tar_arg, "--json",
    ]);
    made.assert_ok();
    let doc = made.json();
    assert_eq!(doc["verdict"], "met", "{doc}");
    let public_arg = public.display().to_string();
    let ok = s.run(&["evidence", "verify", &tar_arg, "--public-key", &public_arg]);
    ok.assert_ok();
    assert!(
        ok.stdout.contains("match the live ledger"),
        "{}",
        ok.describe()
    );
    // The tar cannot be written over.
    s.run(&["evidence", "--from", &from, "--to", &to, "--out", &tar_arg])
        .assert_code(1)
        .assert_one_error_line();

    // An edited file of the extracted pack is named.
    let x = s.root.join("x");
    std::fs::create_dir(&x).unwrap();
    let untar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&x)
        .arg("-xf")
        .arg(&tar)
        .status()
        .unwrap();
    assert!(untar.success());
    let dir = std::fs::read_dir(&x)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report = dir.join("report.json");
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::write(
        &report,
        text.replacen("\"breached\"", "\"met\"", 1)
            .replacen("\"at_risk\"", "\"met\"", 1)
            + " ",
    )
    .unwrap();
    let dir_arg = dir.display().to_string();
    let mut c = bulwark();
    c.args(["evidence", "verify", &dir_arg, "--public-key", &public_arg]);
    let bad = run(&mut c);
    bad.assert_code(1);
    assert!(
        bad.stderr.contains("report.json: changed"),
        "{}",
        bad.describe()
    );

    // Another key's public half does not verify the pack.
    let other = s.root.join("other.key");
    let mut c = bulwark();
    c.args(["evidence", "keygen", "--out"]).arg(&other);
    run(&mut c).assert_ok();
    let mut c = bulwark();
    c.args(["evidence", "verify", &tar_arg, "--public-key"])
        .arg(s.root.join("other.key.pub"));
    let wrong = run(&mut c);
    wrong.assert_code(1).assert_one_error_line();
    assert!(
        wrong.stderr.contains("MANIFEST.sig"),
        "{}",
        wrong.describe()
    );

    // The most recent restore test of each dataset.
    let latest = s.run(&["evidence", "restore-tests", "--json"]).json();
    let app_db = latest
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["dataset"] == "app-db")
        .unwrap();
    assert_eq!(app_db["verdict"], "met", "{latest}");
    assert_eq!(app_db["last"]["passed"], true);
    assert!(
        app_db["last"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("integrity: passed"))
    );

    // With Chromium installed, the report also comes as a PDF inside the signed manifest.
    if bulwark_app::evidence::pdf::find_chromium().is_some() {
        let out = s.root.join("with-pdf");
        let out_arg = out.display().to_string();
        s.run(&[
            "evidence", "--from", &from, "--to", &to, "--out", &out_arg, "--pdf",
        ])
        .assert_ok();
        assert!(
            std::fs::read(out.join("report.pdf"))
                .unwrap()
                .starts_with(b"%PDF")
        );
        assert!(
            std::fs::read_to_string(out.join("MANIFEST"))
                .unwrap()
                .contains("  report.pdf\n")
        );
        s.run(&["evidence", "verify", &out_arg, "--public-key", &public_arg])
            .assert_ok();
    }

    // Bad input: one line, the documented code.
    s.run(&["evidence", "--to", &to, "--out", "y"])
        .assert_code(2)
        .assert_one_error_line();
    let yesterday = (Utc::now() - Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    s.run(&["evidence", "--from", &to, "--to", &yesterday, "--out", "y"])
        .assert_code(2)
        .assert_one_error_line();
    s.run(&["evidence", "--from", "last tuesday", "--out", "y"])
        .assert_code(2)
        .assert_one_error_line();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = s.run(&["evidence", "--from", &from, "--to", &to, "--out", "z.tar"]);
    open.assert_code(1).assert_one_error_line();
    assert!(open.stderr.contains("chmod 600"), "{}", open.describe());
}
