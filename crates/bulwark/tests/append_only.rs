//! Append-only backup hosts against moto with IAM enforced on loopback: a backup credential
//! that may put and get objects but not delete them, a maintenance credential that may do
//! anything, and a read-only one. `check --credentials` tells them apart on a canary of its
//! own. (Backups and copies without delete permission: `bulwark-ops/tests/append_only.rs`.)

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::moto::MotoServer;
use serde_json::Value;

const PASSWORD: &str = "append-only test passphrase";

/// An access key moto's IAM made.
struct Key {
    id: String,
    secret: String,
}

impl MotoServer {
    /// A request before IAM is enforced (moto routes by the credential scope's service).
    fn raw(&self, method: &str, path: &str, service: &str, body: &str) -> String {
        // moto reads a form body as a form, and its own API wants the bytes.
        let content_type = if service == "iam" {
            "application/x-www-form-urlencoded"
        } else {
            "text/plain"
        };
        let headers = format!("Content-Type: {content_type}\r\n");
        let (status, resp) = self.request(method, path, service, &headers, body.as_bytes());
        assert_eq!(status, 200, "{method} {path}: {resp}");
        resp
    }

    fn iam(&self, params: &[(&str, &str)]) -> String {
        let body: Vec<String> = params
            .iter()
            .chain(&[("Version", "2010-05-08")])
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        self.raw("POST", "/", "iam", &body.join("&"))
    }

    /// A user allowed `actions` on every bucket, and an access key of it.
    fn user(&self, name: &str, actions: &str) -> Key {
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}"#
        );
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "bulwark"),
            ("PolicyDocument", &policy),
        ]);
        let answer = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let tag = |t: &str| {
            let start = answer.find(&format!("<{t}>")).unwrap() + t.len() + 2;
            let end = answer.find(&format!("</{t}>")).unwrap();
            answer[start..end].to_string()
        };
        Key {
            id: tag("AccessKeyId"),
            secret: tag("SecretAccessKey"),
        }
    }

    /// From now on every request must be signed by a known key and allowed by its policy.
    fn enforce_iam(&self) {
        self.raw("POST", "/moto-api/reset-auth", "s3", "0");
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run(key: &Key, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .arg("--no-cache")
        .env("BULWARK_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
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
    assert!(
        !stderr.contains(&key.secret),
        "the secret key must never be printed: {stderr}"
    );
    out
}

#[track_caller]
fn ok(key: &Key, args: &[&str]) -> Value {
    let out = run(key, args);
    assert!(
        out.status.success(),
        "bulwark {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn check_credentials_tells_a_backup_credential_from_a_maintenance_one() {
    let moto = MotoServer::start(None);
    moto.raw("PUT", "/vault", "s3", "");
    let backup = moto.user(
        "backup-host",
        r#"["s3:PutObject","s3:GetObject","s3:ListBucket"]"#,
    );
    let maint = moto.user("maintenance", r#""s3:*""#);
    let reader = moto.user("auditor", r#"["s3:GetObject","s3:ListBucket"]"#);
    moto.enforce_iam();
    // moto checks the signature of a listing whose prefix holds a '/' wrongly (boto3's fail
    // too), so the repository's own commands cannot run under IAM here; the probe needs none.
    let repo = moto.url("vault/prod");

    let m = ok(&maint, &["check", "--credentials", "--json", "-r", &repo]);
    assert_eq!(m["probe"]["can_create"], true, "{m}");
    assert_eq!(m["probe"]["can_overwrite"], true, "{m}");
    assert_eq!(m["probe"]["can_delete"], true, "{m}");
    assert_eq!(m["probe"]["left_behind"], false, "{m}");
    assert_eq!(m["append_only"], false, "{m}");
    let b = ok(&backup, &["check", "--credentials", "--json", "-r", &repo]);
    assert_eq!(b["probe"]["can_create"], true, "{b}");
    assert_eq!(b["probe"]["can_delete"], false, "{b}");
    assert_eq!(b["probe"]["left_behind"], true, "{b}");
    // Plain S3 permissions cannot tell a create from an overwrite (see SECURITY.md).
    assert_eq!(b["probe"]["can_overwrite"], true, "{b}");
    let text = run(&backup, &["check", "--credentials", "-r", &repo]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("delete no") && stdout.contains("stays behind"),
        "{stdout}"
    );
    let r = ok(&reader, &["check", "--credentials", "--json", "-r", &repo]);
    assert_eq!(r["probe"]["can_create"], false, "{r}");
    assert_eq!(r["probe"]["can_delete"], false, "{r}");
    let text = run(&reader, &["check", "--credentials", "-r", &repo]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("cannot write"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

/// A policy file (the example's) with one more repository, `vault` at `url`, marked
/// `append_only`; the example's own repositories are never created.
fn policy_with_vault(dir: &Path, url: &str) -> std::path::PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    std::fs::copy(
        examples.join("demo.passphrase"),
        dir.join("demo.passphrase"),
    )
    .unwrap();
    let text = std::fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/");
    let config = dir.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[repositories.vault]\nurl = \"{url}\"\nregion = \"vault-region\"\n\
             password_file = \"demo.passphrase\"\nreplica_of = \"primary\"\nappend_only = true\n"
        ),
    )
    .unwrap();
    config
}

fn vault_check(key: &Key, config: &Path) -> (Option<i32>, Value, String) {
    let json = run(key, &["status", "--json", "-c", config.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|_| panic!("status: {}", String::from_utf8_lossy(&json.stderr)));
    let text = run(key, &["status", "-c", config.to_str().unwrap()]);
    let vault = v["append_only"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["repository"] == "vault"))
        .cloned()
        .unwrap_or_else(|| panic!("no append_only entry for vault: {v}"));
    (
        json.status.code(),
        vault,
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

#[test]
fn status_flags_an_append_only_repository_whose_credential_can_delete() {
    let moto = MotoServer::start(None);
    moto.raw("PUT", "/vault", "s3", "");
    let backup = moto.user(
        "backup-host",
        r#"["s3:PutObject","s3:GetObject","s3:ListBucket"]"#,
    );
    let maint = moto.user("maintenance", r#""s3:*""#);
    moto.enforce_iam();
    let dir = tempfile::tempdir().unwrap();
    let config = policy_with_vault(dir.path(), &moto.url("vault/prod"));
    ok(&maint, &["init", "-c", config.to_str().unwrap()]);

    let (code, vault, text) = vault_check(&maint, &config);
    assert_eq!(code, Some(1), "{vault}");
    assert_eq!(vault["verdict"], "breached", "{vault}");
    assert_eq!(vault["can_delete"], true, "{vault}");
    assert!(text.contains("append-only vault"), "{text}");
    let (_, vault, _) = vault_check(&backup, &config);
    assert_eq!(vault["verdict"], "met", "{vault}");
    assert_eq!(vault["can_delete"], false, "{vault}");
    // Probing again finds this host's canary still there, and reuses it.
    let (_, again, _) = vault_check(&backup, &config);
    assert_eq!(again["verdict"], "met", "{again}");

    // A local directory: its owner can always delete.
    let local = dir.path().join("state/vault");
    let config = policy_with_vault(dir.path(), "state/vault");
    ok(&maint, &["init", "-c", config.to_str().unwrap()]);
    let (_, vault, _) = vault_check(&maint, &config);
    assert_eq!(vault["verdict"], "breached", "{vault}");
    assert!(
        !local.join("canary").exists(),
        "a canary that could go, went"
    );
}
