//! `bulwark audit replication` against a real S3-compatible server (moto) on loopback: two
//! buckets, objects deleted, changed and added behind the replica's back; every difference named,
//! the audit recorded in the ledger, judged by `status`, run by `run`; a missing bucket is one
//! clear line.

mod common;

use std::time::Duration;

use common::moto::MotoServer;
use common::{Out, run};
use serde_json::Value;

impl MotoServer {
    fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, resp) = self.request("PUT", &format!("/{bucket}/{key}"), "s3", "", body);
        assert_eq!(status, 200, "{resp}");
    }

    fn delete(&self, bucket: &str, key: &str) {
        // moto checks no signature, but refuses a delete without any Authorization header.
        let (status, resp) = self.request("DELETE", &format!("/{bucket}/{key}"), "s3", "", b"");
        assert_eq!(status, 204, "{resp}");
    }
}

fn bulwark(args: &[&str]) -> Out {
    run(common::bulwark()
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("BULWARK_PASSWORD", common::PASSWORD))
}

fn keys(v: &Value) -> Vec<(String, bool)> {
    v["unreplicated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["key"].as_str().unwrap().to_string(),
                u.get("replica_size").is_some(),
            )
        })
        .collect()
}

#[test]
fn what_the_replica_lacks_or_holds_differently_is_named_recorded_and_judged() {
    let moto = MotoServer::start(None);
    for b in ["media-eu", "media-us"] {
        assert_eq!(moto.request("PUT", &format!("/{b}"), "s3", "", b"").0, 200);
    }
    let objects: [(&str, &[u8]); 5] = [
        ("photos/a.jpg", b"aaaa"),
        ("photos/b.jpg", b"bbbbbb"),
        ("docs/c.pdf", b"cccccccc"),
        ("d.txt", b"dd"),
        ("e.txt", b"eeeee"),
    ];
    for (k, body) in objects {
        moto.put("media-eu", k, body);
        moto.put("media-us", k, body);
    }
    let (src, dst) = (moto.url("media-eu"), moto.url("media-us"));
    let out = bulwark(&["audit", "replication", &src, &dst, "--json"]);
    out.assert_ok();
    assert_eq!(out.json()["source_objects"], 5);

    // Behind the replica's back: one deleted, one changed at the same size, one changed in size,
    // one only in the replica.
    moto.delete("media-us", "docs/c.pdf");
    moto.put("media-us", "d.txt", b"xx");
    moto.put("media-us", "e.txt", b"short");
    moto.put("media-us", "e.txt", b"longer!");
    moto.put("media-us", "only-here.txt", b"z");
    let out = bulwark(&["audit", "replication", &src, &dst, "--json"]);
    out.assert_code(1);
    let a = out.json();
    assert_eq!(
        (&a["missing"], &a["differing"], &a["extra"]),
        (&Value::from(1), &Value::from(2), &Value::from(1)),
        "{a}"
    );
    let mut named = keys(&a);
    named.sort();
    assert_eq!(
        named,
        [
            ("d.txt".to_string(), true),
            ("docs/c.pdf".to_string(), false),
            ("e.txt".to_string(), true)
        ]
    );
    assert_eq!(a["extra_keys"], serde_json::json!(["only-here.txt"]));
    assert!(a["oldest_unreplicated"].is_string(), "{a}");
    let text = bulwark(&["audit", "replication", &src, &dst]);
    assert!(
        text.stdout.contains("missing docs/c.pdf")
            && text.stdout.contains("1 missing, 2 differing"),
        "{}",
        text.describe()
    );

    // The policy file's pair: recorded, judged, and run by `run`.
    let dir = common::tempdir("audit");
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/a"), b"a").unwrap();
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.primary]\nurl = \"{repo}\"\n\n[datasets.docs]\nkind = \"files\"\npaths = [\"{docs}\"]\nschedule = \"daily at 02:00\"\n\n[replication.media]\nsource = \"{src}\"\nreplica = \"{dst}\"\nmax_lag = \"1s\"\n",
            repo = dir.path().join("repo").display(),
            docs = dir.path().join("docs").display(),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // Older than the allowed lag by the time it is audited: the provider is not replicating it.
    std::thread::sleep(Duration::from_millis(1500));
    let out = bulwark(&["audit", "replication", "-c", cfg, "--json"]);
    out.assert_code(1);
    assert_eq!(out.json()[0]["audit"]["missing"], 1, "{}", out.describe());
    let status = bulwark(&["status", "-c", cfg, "--json"]).json();
    let judged = &status["replication"]["media"]["status"];
    assert_eq!(judged["verdict"], "breached", "{judged}");
    assert!(
        judged["reason"]
            .as_str()
            .unwrap()
            .contains("not replicating"),
        "{judged}"
    );

    // Put right: the next audit, made by `run`, passes and status says so.
    moto.put("media-us", "docs/c.pdf", b"cccccccc");
    moto.put("media-us", "d.txt", b"dd");
    moto.put("media-us", "e.txt", b"eeeee");
    let out = bulwark(&["run", "-c", cfg, "--init", "--json"]);
    out.assert_ok();
    let steps: Vec<String> = out.json()["maintenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"replication audit media".to_string()),
        "{steps:?}"
    );
    let status = bulwark(&["status", "-c", cfg, "--json"]).json();
    assert_eq!(
        status["replication"]["media"]["status"]["verdict"], "met",
        "{status}"
    );
    let events = bulwark(&["ledger", "events", "-c", cfg, "--json"]).json();
    let audits: Vec<bool> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "replication_audit")
        .map(|e| e["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(audits, [false, true]);
    assert!(
        !bulwark(&["status", "-c", cfg, "--json"])
            .stdout
            .contains("testing"),
        "no credential in the report"
    );

    // A bucket that does not exist: one line that says so.
    let out = bulwark(&["audit", "replication", &src, &moto.url("no-such-bucket")]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());
}

#[test]
fn directories_are_compared_by_size_since_their_tags_are_not_content() {
    let dir = common::tempdir("audit-dirs");
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    for d in [&src, &dst] {
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), b"same bytes").unwrap();
        std::fs::write(d.join("sub/b"), b"more of the same").unwrap();
    }
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let out = bulwark(&["audit", "replication", s, d, "--json"]);
    out.assert_ok();
    let a = out.json();
    assert_eq!(
        (&a["differing"], &a["size_only"]),
        (&Value::from(0), &Value::from(2)),
        "{a}"
    );
    std::fs::write(dst.join("sub/b"), b"shorter").unwrap();
    let out = bulwark(&["audit", "replication", s, d, "--json"]);
    out.assert_code(1);
    assert_eq!(keys(&out.json()), [("sub/b".to_string(), true)]);
}
