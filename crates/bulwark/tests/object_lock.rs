//! S3 Object Lock against a real server process (moto) on loopback: a repository made with
//! `init --object-lock` in a bucket created with Object Lock has every object locked as it is
//! written; a delete of a locked version through the same credentials is refused; `check
//! --locks` proves coverage after backups, forget, prune and lock extension, and lists a
//! snapshot whose packs' locks run short (one dated a month ahead, sharing older packs).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::moto::MotoServer;
use serde_json::Value;

const PASSWORD: &str = "object lock test passphrase";

impl MotoServer {
    /// One raw request, as any holder of the bucket's credentials could send it (moto checks
    /// that a request is authenticated, not its signature): the status code and the whole
    /// answer, headers and body.
    fn raw(&self, method: &str, path: &str, headers: &str) -> (u16, String) {
        self.raw_with_body(method, path, headers, "")
    }

    fn raw_with_body(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        self.request(method, path, "s3", headers, body.as_bytes())
    }

    fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let header = if object_lock {
            "x-amz-bucket-object-lock-enabled: true\r\n"
        } else {
            ""
        };
        let (status, body) = self.raw("PUT", &format!("/{bucket}"), header);
        assert_eq!(status, 200, "bucket creation failed: {body}");
    }

    /// The version ids of `key`, newest first.
    fn versions(&self, bucket: &str, key: &str) -> Vec<String> {
        let (status, body) = self.raw("GET", &format!("/{bucket}?versions&prefix={key}"), "");
        assert_eq!(status, 200, "{body}");
        body.split("<Version>")
            .skip(1)
            .filter(|v| v.contains(&format!("<Key>{key}</Key>")))
            .map(|v| {
                let start = v.find("<VersionId>").unwrap() + "<VersionId>".len();
                let end = v.find("</VersionId>").unwrap();
                v[start..end].to_string()
            })
            .collect()
    }
}

fn run(repo: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .args(["-r", repo, "--no-cache"])
        .env("BULWARK_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("BULWARK_REPO")
        .env_remove("BULWARK_PASSWORD_FILE")
        .env_remove("BULWARK_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "bulwark panicked on {args:?}: {stderr}"
    );
    out
}

fn ok(repo: &str, args: &[&str]) -> Value {
    let out = run(repo, args);
    assert!(
        out.status.success(),
        "bulwark {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn locks(repo: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--locks", "--json"];
    args.extend_from_slice(extra);
    let out = run(repo, &args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "check --locks gave no JSON ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn write_files(dir: &Path, round: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..4 {
        let body: Vec<u8> = (0..20_000u32)
            .map(|n| {
                (n.wrapping_mul(31)
                    .wrapping_add(i * 7 + round * (i == 0) as u32)) as u8
            })
            .collect();
        std::fs::write(dir.join(format!("file{i}")), body).unwrap();
    }
}

#[test]
fn locks_cover_every_retained_snapshot_through_backup_forget_prune_and_extension() {
    let moto = MotoServer::start(None);
    moto.create_bucket("locked", true);
    let repo = moto.url("locked/prod");
    ok(
        &repo,
        &[
            "init",
            "--json",
            "--object-lock",
            "governance",
            "--lock-days",
            "10",
        ],
    );
    // Every object is locked as it is written, for the window plus the margin.
    let (status, head) = moto.raw("HEAD", "/locked/prod/config", "");
    assert_eq!(status, 200, "{head}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name}: {head}"))
    };
    assert_eq!(header("x-amz-object-lock-mode"), "GOVERNANCE");
    let until: chrono::DateTime<chrono::Utc> = header("x-amz-object-lock-retain-until-date")
        .parse()
        .unwrap();
    let days = (until - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (16.9..17.1).contains(&days),
        "locked for 10 + 7 days: {until}"
    );

    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write_files(&src, 1);
    let first = ok(&repo, &["backup", "--json", src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    write_files(&src, 2);
    let second = ok(&repo, &["backup", "--json", src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, v) = locks(&repo, &[]);
    assert_eq!((code, &v["ok"]), (0, &Value::Bool(true)), "{v}");
    assert_eq!(v["snapshots"], 2, "{v}");
    let objects = v["objects"].as_u64().unwrap();
    // config, a key slot, two snapshots, at least one pack and one index file each
    assert!(objects >= 6, "{v}");
    assert!(v["least_slack_s"].as_i64().unwrap() > 0, "{v}");

    // Deleting a locked version is refused to the credentials that wrote it; an unlocked
    // object's version beside it goes.
    let (status, body) = moto.raw_with_body("PUT", "/locked/other/unlocked", "", "x");
    assert_eq!(status, 200, "{body}");
    let versions = moto.versions("locked", "other/unlocked");
    let (status, body) = moto.raw(
        "DELETE",
        &format!("/locked/other/unlocked?versionId={}", versions[0]),
        "",
    );
    assert_eq!(status, 204, "an unlocked version can be deleted: {body}");
    for key in ["prod/config".to_string(), format!("prod/snapshots/{first}")] {
        let versions = moto.versions("locked", &key);
        assert_eq!(versions.len(), 1, "{key}: {versions:?}");
        let (status, body) = moto.raw(
            "DELETE",
            &format!("/locked/{key}?versionId={}", versions[0]),
            "",
        );
        assert_eq!(status, 403, "deleting {key}'s locked version: {body}");
        assert!(body.contains("AccessDenied"), "{body}");
    }

    // A snapshot dated a month ahead reuses the packs written today: their locks end too soon.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let third = ok(
        &repo,
        &["backup", "--json", src.to_str().unwrap(), "--time", &ahead],
    )["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = locks(&repo, &[]);
    assert_eq!((code, &v["ok"]), (1, &Value::Bool(false)), "{v}");
    let short = v["short"].as_array().unwrap();
    assert_eq!(
        short.len(),
        1,
        "only the snapshot dated ahead is short: {v}"
    );
    assert_eq!(short[0]["id"], third.as_str());
    let short_keys: Vec<&str> = short[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(
        short_keys.iter().any(|k| k.starts_with("data/")),
        "its shared packs are listed: {short_keys:?}"
    );
    assert!(v["least_slack_s"].as_i64().unwrap() < 0, "{v}");
    let text = run(&repo, &["check", "--locks"]);
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!("short: snapshot {}", &third[..8])),
        "{stdout}"
    );

    // The maintenance step extends exactly what was short, and coverage holds again.
    let (code, v) = locks(&repo, &["--extend-locks"]);
    assert_eq!((code, &v["ok"]), (0, &Value::Bool(true)), "{v}");
    assert_eq!(
        v["extended"].as_u64().unwrap() as usize,
        short_keys.len(),
        "{v}"
    );
    let (code, v) = locks(&repo, &[]);
    assert_eq!((code, v["extended"].as_u64()), (0, Some(0)), "{v}");

    // Forget the first snapshot and prune its data: prune's deletes of locked objects succeed
    // (S3 keeps the locked version behind a delete marker), and coverage still holds.
    let forgot = ok(
        &repo,
        &[
            "forget",
            "--json",
            "--keep-last",
            "1",
            "--clock-tolerance",
            "off",
            "--prune",
            "--max-unused",
            "0%",
        ],
    );
    let removed: Vec<&str> = forgot["forget"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2, "{forgot}");
    assert!(removed.contains(&first.as_str()) && removed.contains(&second.as_str()));
    assert!(
        forgot["prune"]["packs_deleted"].as_u64().unwrap() > 0,
        "{forgot}"
    );
    assert_eq!(
        moto.versions("locked", &format!("prod/snapshots/{first}"))
            .len(),
        1,
        "the forgotten snapshot's locked version is still there"
    );
    // Repacking wrote a pack the snapshot dated ahead needs past its default lock: the
    // maintenance step after prune extends it, and coverage holds.
    let (code, v) = locks(&repo, &[]);
    assert_eq!((code, v["short"].as_array().unwrap().len()), (1, 1), "{v}");
    let (code, v) = locks(&repo, &["--extend-locks"]);
    assert_eq!((code, &v["ok"]), (0, &Value::Bool(true)), "{v}");
    assert!(v["extended"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["snapshots"], 1, "{v}");
    let check = run(&repo, &["check", "--read-data", "--json"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // An off-site replica in a bucket of its own, locked in compliance mode: copies are locked
    // as they arrive, and cover what the snapshot dated ahead needs once extended.
    moto.create_bucket("offsite", true);
    let offsite = moto.url("offsite/prod");
    ok(
        &offsite,
        &[
            "init",
            "--json",
            "--replica-of",
            &repo,
            "--object-lock",
            "compliance",
            "--lock-days",
            "10",
        ],
    );
    let copied = ok(&repo, &["copy", "--json", "--to", &offsite]);
    assert_eq!(copied["snapshots_copied"].as_array().map(Vec::len), Some(1));
    let (code, v) = locks(&offsite, &["--extend-locks"]);
    assert_eq!(
        (code, &v["ok"], &v["mode"]),
        (0, &Value::Bool(true), &Value::from("compliance")),
        "{v}"
    );
    let key = format!("prod/snapshots/{third}");
    let versions = moto.versions("offsite", &key);
    let (status, body) = moto.raw(
        "DELETE",
        &format!("/offsite/{key}?versionId={}", versions[0]),
        "x-amz-bypass-governance-retention: true\r\n",
    );
    assert_eq!(status, 403, "a compliance lock admits no bypass: {body}");
}

#[test]
fn object_lock_where_there_is_none_is_one_clear_line() {
    let moto = MotoServer::start(None);
    moto.create_bucket("plain", false);
    let repo = moto.url("plain/x");
    let out = run(&repo, &["init", "--object-lock", "compliance"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("Object Lock"), "{stderr}");
    // Nothing was written: the bucket can still become a repository.
    ok(&repo, &["init", "--json"]);
    let out = run(&repo, &["check", "--locks"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no object lock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("repo");
    let out = run(
        local.to_str().unwrap(),
        &["init", "--object-lock", "governance"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Object Lock needs an s3://"), "{stderr}");
    let out = run(&repo, &["init", "--object-lock", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_policy_run_extends_the_locks_after_its_prune_and_records_the_proof() {
    let moto = MotoServer::start(None);
    moto.create_bucket("vault", true);
    let repo = moto.url("vault/prod");
    ok(
        &repo,
        &[
            "init",
            "--object-lock",
            "governance",
            "--lock-days",
            "3",
            "--json",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    write_files(&dir.path().join("src"), 1);
    std::fs::write(dir.path().join("pass"), format!("{PASSWORD}\n")).unwrap();
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.vault]\nurl = \"{repo}\"\npassword_file = \"pass\"\n\n\
             [datasets.docs]\nkind = \"files\"\npaths = [\"src\"]\ntier = \"standard\"\nschedule = \"every 6h\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["run", "--json", "--no-cache", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("BULWARK_PASSWORD")
        .env_remove("BULWARK_REPO")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "run gave no JSON ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let steps: Vec<&Value> = report["maintenance"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    let prune = names.iter().position(|n| *n == "prune");
    let lock = names.iter().position(|n| *n == "lock extension");
    assert!(
        prune.is_some() && lock > prune,
        "the locks are extended after the prune: {report}"
    );
    let step = steps[lock.unwrap()];
    assert_eq!(step["ok"], true, "{report}");
    assert!(
        step["summary"]
            .as_str()
            .unwrap()
            .contains("of 1 snapshots locked long enough"),
        "{report}"
    );
    // `status` judges the commitment on that proof.
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["status", "--json", "--no-cache", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("BULWARK_PASSWORD")
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let coverage = &status["lock_coverage"][0];
    assert_eq!(coverage["repository"], "vault", "{status}");
    assert_eq!(coverage["verdict"], "met", "{status}");
    assert!(
        coverage["reason"]
            .as_str()
            .unwrap()
            .contains("least margin"),
        "{status}"
    );
    // The evidence pack carries the proof as a section of its own.
    let bulwark_in_site = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(args)
            .current_dir(dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("BULWARK_PASSWORD")
            .output()
            .unwrap()
    };
    let keygen = bulwark_in_site(&["evidence", "keygen", "--out", "evidence.key"]);
    assert!(keygen.status.success(), "{keygen:?}");
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        (today - chrono::Duration::days(1)).to_string(),
        (today + chrono::Duration::days(1)).to_string(),
    );
    let pack = bulwark_in_site(&[
        "evidence",
        "--no-cache",
        "-c",
        "bulwark.toml",
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        "pack",
        "--signing-key",
        "evidence.key",
    ]);
    assert!(
        pack.status.success(),
        "{}",
        String::from_utf8_lossy(&pack.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pack/report.json")).unwrap())
            .unwrap();
    let section = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "object_lock")
        .unwrap_or_else(|| panic!("no object_lock section: {report}"));
    assert_eq!(section["verdict"], "met", "{section}");
    assert_eq!(section["subjects"][0]["name"], "vault", "{section}");
    assert_eq!(
        section["tables"][0]["rows"].as_array().unwrap().len(),
        1,
        "{section}"
    );
    // The proof holds afterwards too, for the ledger's copy (a snapshot written after it) as well.
    let (code, v) = locks(&repo, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["snapshots"], 2, "{v}");
    assert_eq!(v["short"], serde_json::json!([]), "{v}");
}
