//! `policy check` on key custody (§8, no single person): a repository whose every credential one
//! person holds is named, with its line; two holders or more pass; an unrecorded custody says
//! nothing.

use bulwark_policy::commitments::check;
use bulwark_policy::config::Config;

const BASE: &str = r#"
[repositories.primary]
url = "/backups/primary"
region = "eu-west-1"
HOLDERS

[repositories.offsite]
url = "s3://backups-us/prod?region=us-east-1"
region = "us-east-1"
replica_of = "primary"
key_holders = ["alice", "bob", "carol"]

[datasets.docs]
kind = "files"
paths = ["/srv/docs"]
schedule = "every 6h"
"#;

fn custody(holders: &str) -> Vec<(bool, String, String, Option<usize>)> {
    let text = BASE.replace("HOLDERS", holders);
    let config = Config::parse("bulwark.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    check(&config)
        .into_iter()
        .filter(|f| f.detail.contains("credential"))
        .map(|f| (f.ok, f.subject, f.detail, f.location.map(|l| l.line)))
        .collect()
}

#[test]
fn one_person_holding_every_credential_is_named_where_the_repository_is() {
    // The same person twice (and with stray spaces) is still one person.
    let findings = custody(r#"key_holders = ["alice", " alice"]"#);
    let primary: Vec<_> = findings.iter().filter(|f| f.1 == "primary").collect();
    assert_eq!(primary.len(), 1, "{findings:?}");
    let (ok, _, detail, line) = primary[0];
    assert!(!ok);
    assert!(detail.contains("held by alice alone"), "{detail}");
    assert!(detail.contains("bulwark key split"), "{detail}");
    let expected = BASE
        .lines()
        .position(|l| l == "[repositories.primary]")
        .unwrap()
        + 1;
    assert_eq!(*line, Some(expected));
    let offsite = findings.iter().find(|f| f.1 == "offsite").unwrap();
    assert!(offsite.0, "{offsite:?}");
    assert!(offsite.2.contains("3 people"), "{offsite:?}");
}

#[test]
fn two_holders_pass_and_unrecorded_custody_is_not_judged() {
    let two = custody(r#"key_holders = ["alice", "bob"]"#);
    assert!(two.iter().all(|f| f.0), "{two:?}");
    let none = custody("");
    assert!(none.iter().all(|f| f.1 != "primary"), "{none:?}");
}

#[test]
fn key_holders_must_be_a_list_of_names() {
    let text = BASE.replace("HOLDERS", r#"key_holders = "alice""#);
    let e = Config::parse("bulwark.toml", &text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("key_holders"))
        .unwrap()
        + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.to_string().contains("expected a sequence"), "{e}");
}
