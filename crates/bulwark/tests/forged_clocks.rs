//! Forged clocks: a compromised host writes snapshots dated in the future (to fill `last N`) and
//! late on past days (to take each daily bucket from the honest snapshot of that day). `forget`
//! compares every snapshot's claimed time with the time the store recorded for its object (here
//! the file's mtime, set as a store would have recorded it), keeps the forgeries with a warning,
//! and applies the rules to the honest history as if they were not there.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use serde_json::Value;

struct History {
    repo: Repo,
    key_file: PathBuf,
    src: PathBuf,
}

impl History {
    fn new() -> History {
        let repo = Repo::init(&[]);
        let key_file = repo.dir.path().join("key");
        repo.run(&["key", "add", "--new-key-file", key_file.to_str().unwrap()])
            .assert_ok();
        let src = repo.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        History {
            repo,
            key_file,
            src,
        }
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> Out {
        let mut c = self.repo.cmd(args);
        c.env("BULWARK_KEY_FILE", &self.key_file);
        run(&mut c)
    }

    /// A snapshot claiming `claimed`, whose object the store recorded at `stored`.
    fn snapshot(&self, content: &str, claimed: DateTime<Utc>, stored: DateTime<Utc>) -> String {
        std::fs::write(self.src.join("f"), content).unwrap();
        let out = self.run(&[
            "backup",
            "--json",
            "--host",
            "web1",
            self.src.to_str().unwrap(),
            "--time",
            &claimed.to_rfc3339(),
        ]);
        out.assert_ok();
        let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
        let t = (stored.timestamp(), 0);
        set_times(&self.repo.path.join("snapshots").join(&id), t, t);
        id
    }

    fn forget(&self, extra: &[&str]) -> (Out, Value) {
        let mut args = vec![
            "forget",
            "--json",
            "--keep-last",
            "3",
            "--keep-daily",
            "7",
            "--group-by",
            "host,paths",
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.assert_ok();
        let v = out.json();
        (out, v)
    }
}

fn kept(v: &Value) -> BTreeSet<String> {
    v["forget"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forged_snapshot_times_cannot_push_honest_history_out() {
    let h = History::new();
    let last = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
    // Ten honest daily snapshots, stored a few minutes after they started.
    let honest: Vec<String> = (0..10)
        .rev()
        .map(|back| {
            let t = last - Duration::days(back);
            h.snapshot(&format!("honest {back}"), t, t + Duration::minutes(4))
        })
        .collect();
    // What the rules keep of the honest history alone: the 7 newest days (the 3 newest too).
    let expected: BTreeSet<String> = honest[3..].iter().cloned().collect();

    // The compromised host, on the last day: three snapshots dated weeks ahead, and five dated
    // at 23:59 of earlier days, all written within hours of the last honest backup.
    let wrote = last + Duration::hours(3);
    let mut forged = BTreeSet::new();
    for ahead in 1..=3 {
        forged.insert(h.snapshot(
            &format!("ahead {ahead}"),
            last + Duration::days(20 + ahead),
            wrote,
        ));
    }
    for back in 1..=5 {
        let late_that_day =
            last - Duration::days(back) + Duration::hours(21) + Duration::minutes(59);
        forged.insert(h.snapshot(&format!("behind {back}"), late_that_day, wrote));
    }

    // Trusting the claims, the forgeries take `last 3` and five of the seven days.
    let (_, trusting) = h.forget(&["--dry-run", "--clock-tolerance", "off"]);
    let honest_kept: BTreeSet<String> = kept(&trusting).intersection(&expected).cloned().collect();
    assert!(
        honest_kept.len() <= 2,
        "the attack must be real without the check: {trusting}"
    );
    assert_eq!(trusting["forget"]["clock_warnings"], serde_json::json!([]));

    // Checked against the store's times: every forgery kept and named, the honest plan unchanged.
    let (out, v) = h.forget(&[]);
    let warnings = v["forget"]["clock_warnings"].as_array().unwrap();
    let warned: BTreeSet<String> = warnings
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(warned, forged, "{v}");
    let skews: Vec<&str> = warnings
        .iter()
        .map(|w| w["skew"].as_str().unwrap())
        .collect();
    assert_eq!(skews.iter().filter(|s| **s == "ahead").count(), 3, "{v}");
    assert_eq!(skews.iter().filter(|s| **s == "behind").count(), 5, "{v}");
    let removed: BTreeSet<String> = v["forget"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let honest_all: BTreeSet<String> = honest.iter().cloned().collect();
    assert_eq!(
        removed,
        honest_all.difference(&expected).cloned().collect(),
        "{v}"
    );
    let left: BTreeSet<String> = h
        .run(&["snapshots", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, expected.union(&forged).cloned().collect());
    for d in v["forget"]["snapshots"].as_array().unwrap() {
        if forged.contains(d["id"].as_str().unwrap()) {
            assert!(
                d["reasons"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("suspicious clock"),
                "{d}"
            );
        }
    }
    assert_eq!(
        out.stderr.matches("warning: snapshot").count(),
        8,
        "{}",
        out.describe()
    );

    // A second run removes nothing more: the honest plan is stable and the forgeries stay.
    let (_, again) = h.forget(&[]);
    assert_eq!(again["forget"]["removed"], serde_json::json!([]), "{again}");
}

#[test]
fn a_clock_tolerance_that_is_no_length_is_a_usage_error() {
    let h = History::new();
    let out = h.run(&["forget", "--keep-last", "1", "--clock-tolerance", "soon"]);
    out.assert_code(2).assert_one_error_line();
    assert!(
        out.stderr.contains("--clock-tolerance"),
        "{}",
        out.describe()
    );
}
