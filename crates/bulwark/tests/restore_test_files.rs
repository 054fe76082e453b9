//! Restore tests of file snapshots: a snapshot within the budget is restored whole and every byte
//! verified; a larger one is tested on a random sample that fits the budget, recorded as sampled
//! and replayable from its seed; a damaged snapshot fails; the scratch location is honoured and
//! left clean; the policy file's budget reaches the run.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

fn corpus(root: &std::path::Path) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    for i in 0..40u32 {
        let dir = if i % 2 == 0 {
            root.join("a")
        } else {
            root.join("a/b")
        };
        let body: Vec<u8> = (0..4096u32).map(|j| (i * 31 + j * 7) as u8).collect();
        fs::write(dir.join(format!("f{i}")), body).unwrap();
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report}"))
}

#[test]
fn file_snapshots_are_tested_whole_or_sampled_within_the_budget() {
    let repo = Repo::init(&[]);
    let src = tempdir("bulwark-rt-src-");
    corpus(src.path());
    repo.backup(&[src.path()], &[]);
    let scratch = tempdir("bulwark-rt-scratch-");
    let scratch_s = scratch.path().to_str().unwrap();

    let whole = repo.json(&[
        "restore-test",
        "latest",
        "--json",
        "--scratch-dir",
        scratch_s,
    ]);
    assert_eq!(whole["kind"], "files");
    assert_eq!(whole["passed"], true, "{whole}");
    assert!(whole.get("sample").is_none(), "{whole}");
    for name in ["structure", "fidelity", "integrity"] {
        assert_eq!(check(&whole, name)["passed"], true, "{whole}");
    }
    assert!(whole["duration_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the scratch directory is left as it was found"
    );

    let sampled = repo.json(&["restore-test", "latest", "--json", "--max-bytes", "40KiB"]);
    assert_eq!(sampled["passed"], true, "{sampled}");
    let s = &sampled["sample"];
    assert_eq!(s["files_total"], 40, "{sampled}");
    let tested = s["files_tested"].as_u64().unwrap();
    assert!((1..40).contains(&tested), "{sampled}");
    assert!(
        s["bytes_tested"].as_u64().unwrap() <= 40 * 1024,
        "{sampled}"
    );
    let seed = s["seed"].as_u64().unwrap().to_string();
    let replay = repo.json(&[
        "restore-test",
        "latest",
        "--json",
        "--max-bytes",
        "40KiB",
        "--sample-seed",
        &seed,
    ]);
    assert_eq!(
        replay["sample"], sampled["sample"],
        "the same seed draws the same sample"
    );

    let out = repo.run(&[
        "restore-test",
        "latest",
        "--scratch-dir",
        "/nonexistent/scratch",
    ]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());
    repo.run(&["restore-test", "latest", "--max-bytes", "lots"])
        .assert_code(2);

    // Damage (to data and tree packs alike): the test fails, on structure or integrity.
    for pack in repo.objects("data").keys() {
        let path = repo.pack_path(pack);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        fs::write(&path, bytes).unwrap();
    }
    let out = repo.run(&["restore-test", "latest", "--json"]);
    out.assert_code(1);
    let failed = out.json();
    assert_eq!(failed["passed"], false, "{failed}");
    let failing: Vec<&str> = failed["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failing
            .iter()
            .all(|n| ["structure", "integrity"].contains(n))
            && !failing.is_empty(),
        "{failed}"
    );
}
