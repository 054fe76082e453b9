//! Cross-region durability of object storage (§3): `[replication.NAME]` names a bucket (or
//! prefix) and the bucket its provider replicates it to; `bulwark audit replication` compares the
//! two listings, and this module judges the newest audit.
//!
//! The judgement: an audit must be on record within `audit_every` (else at risk, and breached
//! after twice that); an object that is missing or different in the replica is *lag* while it is
//! younger than `max_lag` (replication is asynchronous) and a *breach* once it is older: the
//! provider is not replicating it. Objects only in the replica are reported, never judged: a
//! replica may keep what the source deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::compliance::{Aspect, Verdict};
use crate::config::{Location, locate, parse_short_duration};
use crate::duration::human;

/// A source bucket and its replica, as the policy file names them.
#[derive(Debug, Clone, Serialize)]
pub struct Replication {
    pub name: String,
    /// `s3://BUCKET[/PREFIX]?region=…&endpoint=…`, or a directory.
    pub source: String,
    pub replica: String,
    /// How old an object may be before it must be in the replica.
    pub max_lag: Duration,
    /// How often the two listings are compared (`run` audits when due).
    pub audit_every: Duration,
    pub location: Location,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplication {
    source: String,
    replica: String,
    max_lag: Option<Spanned<String>>,
    audit_every: Option<Spanned<String>>,
}

/// Resolve `[replication.NAME]`; errors are `(offset, message)` for the caller to locate.
pub(crate) fn resolve(
    text: &str,
    name: &str,
    raw: &Spanned<RawReplication>,
) -> Result<Replication, (usize, String)> {
    let r = raw.get_ref();
    let duration = |key: &str, v: &Option<Spanned<String>>, default: Duration| match v {
        Some(s) => parse_short_duration(s.get_ref(), false)
            .map_err(|e| (s.span().start, format!("replication.{name}.{key}: {e}"))),
        None => Ok(default),
    };
    if r.source.trim().is_empty() || r.replica.trim().is_empty() {
        return Err((
            raw.span().start,
            format!("replication.{name}: give both `source` and `replica`"),
        ));
    }
    if r.source == r.replica {
        return Err((
            raw.span().start,
            format!("replication.{name}: the replica is the source itself"),
        ));
    }
    Ok(Replication {
        name: name.to_string(),
        source: r.source.clone(),
        replica: r.replica.clone(),
        max_lag: duration("max_lag", &r.max_lag, Duration::from_secs(3600))?,
        audit_every: duration("audit_every", &r.audit_every, Duration::from_secs(86_400))?,
        location: locate(text, raw.span().start),
    })
}

/// What the newest audit of a pair found, as the judgement needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditFact {
    pub time: DateTime<Utc>,
    pub source_objects: u64,
    /// Objects missing from the replica or different there.
    pub unreplicated: u64,
    /// When the oldest unreplicated object was last modified in the source.
    pub oldest_unreplicated: Option<DateTime<Utc>>,
}

/// Whether an audit is due for a pair whose newest audit is `last`.
pub fn audit_due(r: &Replication, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let every = chrono::Duration::from_std(r.audit_every).unwrap_or(chrono::Duration::MAX);
    last.is_none_or(|t| now - t >= every)
}

/// The verdict on one pair from its newest audit.
pub fn evaluate(r: &Replication, last: Option<&AuditFact>, now: DateTime<Utc>) -> Aspect {
    let target = format!(
        "every object in {} within {}, audited every {}",
        r.replica,
        human(r.max_lag),
        human(r.audit_every)
    );
    let aspect = |verdict, actual: String, reason: String| Aspect {
        name: "replication",
        verdict,
        target: target.clone(),
        actual,
        reason,
    };
    let Some(a) = last else {
        return aspect(
            Verdict::Breached,
            "never audited".into(),
            format!(
                "no audit of {} against {} on record: run `bulwark audit replication`",
                r.source, r.replica
            ),
        );
    };
    let since = (now - a.time).to_std().unwrap_or_default();
    let actual = format!(
        "{} of {} objects unreplicated at {}",
        a.unreplicated,
        a.source_objects,
        a.time.format("%Y-%m-%d %H:%M UTC")
    );
    let lag = a
        .oldest_unreplicated
        .map(|t| (a.time - t).to_std().unwrap_or_default());
    match lag {
        Some(l) if l > r.max_lag => aspect(
            Verdict::Breached,
            actual,
            format!(
                "an object {} old was not in the replica (max lag {}): the provider is not replicating it",
                human(l),
                human(r.max_lag)
            ),
        ),
        _ if since >= r.audit_every.saturating_mul(2) => aspect(
            Verdict::Breached,
            actual,
            format!("the newest audit is {} old", human(since)),
        ),
        _ if since >= r.audit_every => aspect(
            Verdict::AtRisk,
            actual,
            format!("an audit is due (the newest is {} old)", human(since)),
        ),
        Some(l) => aspect(
            Verdict::Met,
            actual,
            format!(
                "replication lags by {} at most, within {}",
                human(l),
                human(r.max_lag)
            ),
        ),
        None => aspect(
            Verdict::Met,
            actual,
            "every object is in the replica, unchanged".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pair() -> Replication {
        Replication {
            name: "media".into(),
            source: "s3://media-eu".into(),
            replica: "s3://media-us".into(),
            max_lag: Duration::from_secs(3600),
            audit_every: Duration::from_secs(86_400),
            location: Location { line: 1, column: 1 },
        }
    }

    fn at(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn lag_within_the_window_is_met_and_beyond_it_breached() {
        let r = pair();
        let fact = |unreplicated, oldest_h: Option<i64>| AuditFact {
            time: at(10),
            source_objects: 100,
            unreplicated,
            oldest_unreplicated: oldest_h.map(|h| at(10) - chrono::Duration::minutes(h)),
        };
        let v = |f: &AuditFact, now| evaluate(&r, Some(f), now).verdict;
        assert_eq!(v(&fact(0, None), at(11)), Verdict::Met);
        assert_eq!(v(&fact(3, Some(20)), at(11)), Verdict::Met, "20 min of lag");
        assert_eq!(v(&fact(3, Some(61)), at(11)), Verdict::Breached);
        // Audits age: due after a day, breached after two.
        assert_eq!(v(&fact(0, None), at(10 + 24)), Verdict::AtRisk);
        assert_eq!(v(&fact(0, None), at(10 + 48)), Verdict::Breached);
        assert_eq!(evaluate(&r, None, at(0)).verdict, Verdict::Breached);
    }

    #[test]
    fn audits_fall_due_by_the_interval() {
        let r = pair();
        assert!(audit_due(&r, None, at(0)));
        assert!(!audit_due(&r, Some(at(0)), at(23)));
        assert!(audit_due(&r, Some(at(0)), at(24)));
    }
}
