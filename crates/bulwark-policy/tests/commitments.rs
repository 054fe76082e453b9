//! `policy check` on a configuration that keeps every commitment, and on variants that each
//! break exactly one; and status verdicts on fabricated histories with a controlled clock.

use bulwark_policy::commitments::{COMMITMENTS, check};
use bulwark_policy::compliance::{DatasetFacts, ReplicaFact, RestoreTestFact, Verdict, evaluate};
use bulwark_policy::config::Config;
use chrono::{DateTime, Duration, TimeZone, Utc};

const GOOD: &str = r#"
[policy]
rpo = "24h"
rto = "4h"

[repositories.primary]
url = "s3://backups-eu/prod?region=eu-west-1"
region = "eu-west-1"

[repositories.offsite]
url = "s3://backups-us/prod?region=us-east-1"
region = "us-east-1"
replica_of = "primary"

[datasets.orders-db]
kind = "postgres"
source = "postgres://app@db1/orders"
tier = "critical"
schedule = "daily at 02:00"
retention = { keep_within = "30d", keep_monthly = 12 }
restore_test = { every = "7d", checks = ["SELECT count(*) > 0 FROM orders"] }

[datasets.docs]
kind = "files"
paths = ["/srv/docs"]
schedule = "every 6h"

[roles.incident-commander]
owner = "alice"
alternates = ["bob"]
"#;

fn failing(text: &str) -> Vec<&'static str> {
    let config = Config::parse("bulwark.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let mut v: Vec<&'static str> = check(&config)
        .into_iter()
        .filter(|f| !f.ok)
        .map(|f| f.commitment)
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn the_good_configuration_meets_every_commitment() {
    assert_eq!(failing(GOOD), Vec::<&str>::new());
    let config = Config::parse("bulwark.toml", GOOD).unwrap();
    let covered: std::collections::BTreeSet<_> =
        check(&config).iter().map(|f| f.commitment).collect();
    for c in COMMITMENTS {
        assert!(covered.contains(c), "no finding speaks to {c}");
    }
}

#[test]
fn each_violation_is_named_alone() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "rpo",
            r#"schedule = "daily at 02:00""#,
            r#"schedule = "weekly on sunday at 02:00""#,
        ),
        ("rpo", r#"rpo = "24h""#, r#"rpo = "36h""#),
        ("rto", r#"rto = "4h""#, r#"rto = "6h""#),
        (
            "retention",
            r#"keep_within = "30d", keep_monthly = 12"#,
            r#"keep_within = "14d", keep_monthly = 12"#,
        ),
        (
            "offsite",
            r#"region = "us-east-1""#,
            r#"region = "eu-west-1""#,
        ),
        ("restore_test", r#"every = "7d""#, r#"every = "120d""#),
        ("roles", r#"alternates = ["bob"]"#, r#"alternates = []"#),
        (
            "drill",
            r#"rto = "4h""#,
            "rto = \"4h\"\ndrill_every = \"400d\"",
        ),
        (
            "review",
            r#"rto = "4h""#,
            "rto = \"4h\"\nreview_every = \"2y\"",
        ),
        (
            "incident_updates",
            r#"rto = "4h""#,
            "rto = \"4h\"\nstatus_update_every = \"3h\"",
        ),
        (
            "postmortem",
            r#"rto = "4h""#,
            "rto = \"4h\"\npostmortem_within_business_days = 15",
        ),
    ];
    for (commitment, from, to) in cases {
        assert!(GOOD.contains(from), "{from}");
        let bad = GOOD.replacen(from, to, 1);
        assert_eq!(
            failing(&bad),
            vec![*commitment],
            "changing {from:?} to {to:?}"
        );
    }
}

#[test]
fn violations_point_at_their_line() {
    let bad = GOOD.replacen(
        r#"schedule = "daily at 02:00""#,
        r#"schedule = "weekly on sunday at 02:00""#,
        1,
    );
    let config = Config::parse("bulwark.toml", &bad).unwrap();
    let f = check(&config).into_iter().find(|f| !f.ok).unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("schedule = \"weekly"))
        .unwrap()
        + 1;
    assert_eq!(f.location.unwrap().line, line);
    assert_eq!(f.subject, "orders-db");
}

#[test]
fn malformed_files_get_line_and_column() {
    let e = Config::parse("bulwark.toml", "[policy]\nrpo = \"24h\"\nrto = 4h\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 7), "{e}");
    let e = Config::parse("bulwark.toml", "[policy]\nrpo = \"soon\"\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().starts_with("bulwark.toml:2:"), "{e}");
    let e = Config::parse(
        "bulwark.toml",
        "[datasets.x]\nkind = \"files\"\npaths = [\"/a\"]\nschedule = \"daily at 26:00\"\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    let e = Config::parse("bulwark.toml", "[polcy]\n").unwrap_err();
    assert!(e.message.contains("polcy"), "{e}");
}

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
}

fn facts(
    last_backup: DateTime<Utc>,
    replica: DateTime<Utc>,
    test: Option<(DateTime<Utc>, bool)>,
) -> DatasetFacts {
    let t = test.map(|(time, passed)| RestoreTestFact {
        time,
        passed,
        duration_s: 42.0,
        bytes: None,
    });
    DatasetFacts {
        last_backup: Some(last_backup),
        oldest_backup: Some(last_backup - Duration::days(10)),
        size_bytes: None,
        snapshots: 10,
        replicas: vec![ReplicaFact {
            repository: "offsite".into(),
            region: Some("us-east-1".into()),
            newest: Some(replica),
        }],
        last_passed_restore_test: t.clone().filter(|t| t.passed),
        last_restore_test: t,
        open_remediations: 0,
        last_wal: None,
    }
}

#[test]
fn status_verdicts_follow_the_clock() {
    let config = Config::parse("bulwark.toml", GOOD).unwrap();
    let d = &config.datasets["orders-db"];
    let tested = Some((at(22, 3), true));
    // Backed up at 02:00 on the 26th, now 10:00: fresh.
    let s = evaluate(&config, d, &facts(at(26, 2), at(26, 2), tested), at(26, 10));
    assert_eq!(s.verdict, Verdict::Met, "{s:?}");
    // 23 hours later, with the next run due on time: still met.
    let s = evaluate(&config, d, &facts(at(26, 2), at(26, 2), tested), at(27, 1));
    assert_eq!(s.verdict, Verdict::Met, "{s:?}");
    // Every 6 hours: the 06:00 run produced nothing, so it is at risk well before the RPO ends.
    let docs = &config.datasets["docs"];
    let s = evaluate(
        &config,
        docs,
        &facts(at(26, 0), at(26, 0), tested),
        at(26, 8),
    );
    assert_eq!(s.verdict, Verdict::AtRisk, "{s:?}");
    assert!(s.reason.starts_with("rpo"), "{}", s.reason);
    let s = evaluate(
        &config,
        docs,
        &facts(at(26, 0), at(26, 0), tested),
        at(26, 3),
    );
    assert_eq!(s.verdict, Verdict::Met, "{s:?}");
    // Past 24 hours.
    let s = evaluate(&config, d, &facts(at(26, 2), at(26, 2), tested), at(27, 3));
    assert_eq!(s.verdict, Verdict::Breached, "{s:?}");
    assert!(s.reason.starts_with("rpo"), "{}", s.reason);
    // The primary is fresh but the off-site copy is two days old.
    let s = evaluate(&config, d, &facts(at(26, 2), at(24, 2), tested), at(26, 10));
    assert_eq!(s.verdict, Verdict::Breached);
    assert!(s.reason.starts_with("offsite"), "{}", s.reason);
    // A failed restore test breaches the RTO until a re-test passes.
    let mut f = facts(at(26, 2), at(26, 2), Some((at(26, 4), false)));
    f.last_passed_restore_test = Some(RestoreTestFact {
        time: at(20, 3),
        passed: true,
        duration_s: 40.0,
        bytes: None,
    });
    f.open_remediations = 1;
    let s = evaluate(&config, d, &f, at(26, 10));
    assert_eq!(s.verdict, Verdict::Breached);
    assert!(s.reason.starts_with("rto"), "{}", s.reason);
    let s = evaluate(
        &config,
        d,
        &facts(at(26, 2), at(26, 2), Some((at(26, 5), true))),
        at(26, 10),
    );
    assert_eq!(s.verdict, Verdict::Met);
    // No restore test at all.
    let s = evaluate(&config, d, &facts(at(26, 2), at(26, 2), None), at(26, 10));
    assert_eq!(s.verdict, Verdict::Breached);
    // A test 7 days old is overdue; 6.5 days old is due before the next run.
    let s = evaluate(
        &config,
        d,
        &facts(at(26, 2), at(26, 2), Some((at(19, 1), true))),
        at(26, 10),
    );
    assert_eq!(s.verdict, Verdict::Breached);
    let s = evaluate(
        &config,
        d,
        &facts(at(26, 2), at(26, 2), Some((at(19, 20), true))),
        at(26, 10),
    );
    assert_eq!(s.verdict, Verdict::AtRisk);
}
