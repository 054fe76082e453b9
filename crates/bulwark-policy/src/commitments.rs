//! `policy check`: can this configuration keep each commitment of the BCP/DR policy? Every
//! finding names the commitment, what it is about, and where in the file it was decided.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Dataset, Location};
use crate::duration::human;
use crate::retention::UNLIMITED;

/// The policy's numbers. A configuration may be stricter, never looser.
pub mod policy {
    use std::time::Duration;
    pub const RPO: Duration = Duration::from_secs(24 * 3600);
    pub const RTO: Duration = Duration::from_secs(4 * 3600);
    pub const RETENTION_DAYS: u64 = 30;
    pub const RESTORE_TEST_EVERY: Duration = Duration::from_secs(90 * 86_400);
    pub const DRILL_EVERY: Duration = Duration::from_secs(365 * 86_400);
    pub const REVIEW_EVERY: Duration = Duration::from_secs(365 * 86_400);
    pub const STATUS_UPDATE_EVERY: Duration = Duration::from_secs(2 * 3600);
    pub const POSTMORTEM_BUSINESS_DAYS: u32 = 10;
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `rpo`, `rto`, `retention`, `encryption`, `offsite`, `restore_test`, `drill`,
    /// `incident_updates`, `postmortem`, `roles` or `review`.
    pub commitment: &'static str,
    pub ok: bool,
    /// What the finding is about: `policy`, a dataset, a repository or a role.
    pub subject: String,
    pub detail: String,
    pub location: Option<Location>,
}

pub const COMMITMENTS: [&str; 11] = [
    "rpo",
    "rto",
    "retention",
    "encryption",
    "offsite",
    "restore_test",
    "drill",
    "incident_updates",
    "postmortem",
    "roles",
    "review",
];

/// How far back a dataset's rules keep (at least) daily snapshots.
pub fn daily_history(d: &Dataset) -> Duration {
    let r = &d.retention;
    let days = |n: u64| Duration::from_secs(n * 86_400);
    let count = |c: Option<u32>| c.unwrap_or(0) as u64;
    let mut span = r.within.map(|w| w.approximate()).unwrap_or_default();
    if r.daily == Some(UNLIMITED) || r.last == Some(UNLIMITED) {
        return Duration::MAX;
    }
    span = span.max(days(count(r.daily)));
    span = span.max(Duration::from_secs(count(r.hourly) * 3600));
    // The newest `last` runs cover `last` schedule intervals (at daily or finer schedules).
    let interval = d.schedule.max_interval().min(days(1));
    span = span.max(interval.saturating_mul(count(r.last) as u32));
    span
}

pub fn check(config: &Config) -> Vec<Finding> {
    let t = &config.targets;
    let loc = |key: &str| t.locations.get(key).copied();
    let mut out = Vec::new();
    let mut push = |commitment, ok, subject: &str, detail: String, location| {
        out.push(Finding {
            commitment,
            ok,
            subject: subject.to_string(),
            detail,
            location,
        })
    };
    let at_most = |what: &str, value: Duration, limit: Duration| {
        (
            value <= limit,
            format!(
                "{what} is {} (the policy requires at most {})",
                human(value),
                human(limit)
            ),
        )
    };

    let (ok, d) = at_most("the RPO target", t.rpo, policy::RPO);
    push("rpo", ok, "policy", d, loc("rpo"));
    let (ok, d) = at_most("the RTO target", t.rto, policy::RTO);
    push("rto", ok, "policy", d, loc("rto"));
    let retention = t.retention.approximate();
    let want = Duration::from_secs(policy::RETENTION_DAYS * 86_400);
    push(
        "retention",
        retention >= want,
        "policy",
        format!(
            "the retention target is {} (the policy requires at least {}d)",
            t.retention,
            policy::RETENTION_DAYS
        ),
        loc("retention"),
    );
    let (ok, d) = at_most(
        "the restore-test interval",
        t.restore_test_every,
        policy::RESTORE_TEST_EVERY,
    );
    push("restore_test", ok, "policy", d, loc("restore_test_every"));
    let (ok, d) = at_most("the DR drill interval", t.drill_every, policy::DRILL_EVERY);
    push("drill", ok, "policy", d, loc("drill_every"));
    let (ok, d) = at_most(
        "the plan review interval",
        t.review_every,
        policy::REVIEW_EVERY,
    );
    push("review", ok, "policy", d, loc("review_every"));
    let (ok, d) = at_most(
        "the SEV-1/SEV-2 status update interval",
        t.status_update_every,
        policy::STATUS_UPDATE_EVERY,
    );
    push(
        "incident_updates",
        ok,
        "policy",
        d,
        loc("status_update_every"),
    );
    push(
        "postmortem",
        t.postmortem_within_business_days <= policy::POSTMORTEM_BUSINESS_DAYS,
        "policy",
        format!(
            "post-mortems within {} business days (the policy requires at most {})",
            t.postmortem_within_business_days,
            policy::POSTMORTEM_BUSINESS_DAYS
        ),
        loc("postmortem_within_business_days"),
    );
    push(
        "offsite",
        t.offsite_required_for
            .contains(&crate::config::Tier::Critical),
        "policy",
        "off-site copies are required for critical data".into(),
        loc("offsite_required_for"),
    );
    push(
        "encryption",
        true,
        "policy",
        "every repository is encrypted with AES-256-GCM by design".into(),
        None,
    );

    for d in config.datasets.values() {
        let interval = d.schedule.max_interval();
        if d.method == crate::config::Method::Physical {
            push(
                "rpo",
                true,
                &d.name,
                format!(
                    "WAL is archived continuously; status judges the newest segment's age against the RPO ({})",
                    human(t.rpo)
                ),
                Some(d.schedule_location),
            );
        } else {
            push(
                "rpo",
                interval <= t.rpo,
                &d.name,
                format!(
                    "schedule '{}' leaves up to {} between backups (RPO {})",
                    d.schedule,
                    human(interval),
                    human(t.rpo)
                ),
                Some(d.schedule_location),
            );
        }
        let history = daily_history(d);
        push(
            "retention",
            history >= retention,
            &d.name,
            if history == Duration::MAX {
                "keeps every daily snapshot".into()
            } else {
                format!(
                    "keeps daily history for {} (retention {})",
                    human(history),
                    t.retention
                )
            },
            d.retention_location.or(Some(d.location)),
        );
        push(
            "restore_test",
            d.restore_test.every <= t.restore_test_every,
            &d.name,
            format!(
                "restore tests every {} (at most {})",
                human(d.restore_test.every),
                human(t.restore_test_every)
            ),
            d.restore_test_location.or(Some(d.location)),
        );
        if t.offsite_required_for.contains(&d.tier) {
            let primary = config.repositories.get(&d.repository);
            let region = primary.and_then(|p| p.region.clone());
            let elsewhere: Vec<_> = config
                .replicas_of(&d.repository)
                .filter(|r| r.region.is_some() && r.region != region)
                .map(|r| r.name.clone())
                .collect();
            let ok = region.is_some() && !elsewhere.is_empty();
            let detail = if ok {
                format!(
                    "{:?} data in '{}' ({}) is copied to {}",
                    d.tier,
                    d.repository,
                    region.unwrap_or_default(),
                    elsewhere.join(", ")
                )
                .to_lowercase()
            } else if region.is_none() {
                format!(
                    "repository '{}' declares no region, so an off-site copy cannot be shown to be elsewhere",
                    d.repository
                )
            } else {
                format!(
                    "critical data in '{}' has no replica in another region (add a repository with replica_of = \"{}\" and a different region)",
                    d.repository, d.repository
                )
            };
            push("offsite", ok, &d.name, detail, Some(d.location));
        }
    }
    for r in config.repositories.values() {
        if let Some(of) = &r.replica_of {
            let same = config.repositories.get(of).and_then(|p| p.region.clone()) == r.region
                && r.region.is_some();
            if same {
                push(
                    "offsite",
                    false,
                    &r.name,
                    format!("replica '{}' is in the same region as '{of}'", r.name),
                    Some(r.location),
                );
            }
        }
    }
    // Key custody (§8, no single person): a repository whose every credential one person holds
    // is lost, or held hostage, with that person.
    for r in config.repositories.values() {
        let mut holders: Vec<&str> = r.key_holders.iter().map(|h| h.trim()).collect();
        holders.sort_unstable();
        holders.dedup();
        match holders.as_slice() {
            [] => {}
            [only] => push(
                "roles",
                false,
                &r.name,
                format!(
                    "every credential of repository '{}' is held by {only} alone: give a second person a key slot (`bulwark key add`) or split the key into shares (`bulwark key split`)",
                    r.name
                ),
                Some(r.location),
            ),
            many => push(
                "roles",
                true,
                &r.name,
                format!(
                    "repository '{}' opens with credentials held by {} people ({})",
                    r.name,
                    many.len(),
                    many.join(", ")
                ),
                Some(r.location),
            ),
        }
    }
    out.extend(role_findings(config));
    out
}

/// §8: every critical role has an alternate who is not its owner, and no person is the only
/// holder of several critical roles.
pub fn role_findings(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let critical: Vec<_> = config.roles.values().filter(|r| r.critical).collect();
    if critical.is_empty() {
        out.push(Finding {
            commitment: "roles",
            ok: false,
            subject: "roles".into(),
            detail: "no critical roles are declared; list them under [roles.NAME] with alternates"
                .into(),
            location: None,
        });
    }
    let mut sole: std::collections::BTreeMap<&str, Vec<&crate::config::Role>> =
        std::collections::BTreeMap::new();
    for r in &critical {
        let alternates: Vec<_> = r.alternates.iter().filter(|a| **a != r.owner).collect();
        let (ok, detail) = if r.alternates.contains(&r.owner) {
            (
                false,
                format!(
                    "role '{}': {} is listed as an alternate of their own role; name someone else",
                    r.name, r.owner
                ),
            )
        } else if alternates.is_empty() {
            (
                false,
                format!("role '{}' (owner {}) has no alternate", r.name, r.owner),
            )
        } else {
            (
                true,
                format!(
                    "role '{}': owner {}, alternates {}",
                    r.name,
                    r.owner,
                    r.alternates.join(", ")
                ),
            )
        };
        if alternates.is_empty() {
            sole.entry(r.owner.as_str()).or_default().push(r);
        }
        out.push(Finding {
            commitment: "roles",
            ok,
            subject: r.name.clone(),
            detail,
            location: Some(r.location),
        });
    }
    for (person, roles) in sole.into_iter().filter(|(_, r)| r.len() > 1) {
        let names: Vec<_> = roles.iter().map(|r| r.name.as_str()).collect();
        out.push(Finding {
            commitment: "roles",
            ok: false,
            subject: person.to_string(),
            detail: format!(
                "{person} is the only holder of {} critical roles ({}): losing one person would leave them all uncovered",
                names.len(),
                names.join(", ")
            ),
            location: Some(roles[0].location),
        });
    }
    out
}

/// The roles commitment as `status` judges it: breached while any role finding fails.
pub fn roles_aspect(config: &Config) -> crate::compliance::Aspect {
    use crate::compliance::{Aspect, Verdict};
    let findings = role_findings(config);
    let critical = config.roles.values().filter(|r| r.critical).count();
    let failed: Vec<_> = findings.iter().filter(|f| !f.ok).collect();
    Aspect {
        name: "roles",
        verdict: if failed.is_empty() {
            Verdict::Met
        } else {
            Verdict::Breached
        },
        target: "an alternate for every critical role".into(),
        actual: format!("{critical} critical roles, {} uncovered", failed.len()),
        reason: match failed.first() {
            Some(f) => f.detail.clone(),
            None => format!("each of the {critical} critical roles has an alternate"),
        },
    }
}
