//! Which snapshots to keep: restic's `forget` policy, plus holds.
//!
//! [`plan`] follows restic's `ApplyPolicy` (`internal/restic/snapshot_policy.go`)
//! and the documented behaviour of `restic forget`
//! (<https://restic.readthedocs.io/en/stable/060_forget.html>):
//!
//! * Snapshots are ordered newest first by their instant; snapshots with the
//!   same instant keep their input order (restic uses a stable sort).
//! * `last n` keeps the `n` newest snapshots.
//! * `hourly`/`daily`/`weekly`/`monthly`/`yearly n` walk the list newest to
//!   oldest and keep a snapshot whenever its calendar bucket (hour, day, ISO
//!   week, month, year) differs from the previous snapshot's, until `n`
//!   buckets have been kept. Buckets are computed on the snapshot's *own*
//!   wall clock, i.e. in the fixed UTC offset stored with it, so a snapshot
//!   taken at 23:30 in New York belongs to that day even though it is already
//!   the next day in UTC. Weeks are ISO 8601 weeks (Monday to Sunday, week
//!   years as in `2026-W53`); years are calendar years.
//! * If a counted rule still has counts left when the oldest snapshot is
//!   reached, the oldest snapshot is kept too even if its bucket was already
//!   used (restic >= 0.16, reason `oldest daily snapshot ...`). This keeps the
//!   longest history while the policy is not yet "full".
//! * [`UNLIMITED`] (restic's `unlimited`, formerly `-1`) never runs out.
//!   A count of `0` means the rule is not set, exactly as in restic.
//! * `within d` keeps every snapshot whose time is strictly *after*
//!   `reference - d` (restic: `cur.Time.After(t)`), so `within 30d` applied to
//!   daily snapshots keeps exactly 30 of them; a snapshot exactly `d` older
//!   than the reference is removed. By default the reference is the newest
//!   snapshot that is not in the future (see [`WithinReference`]).
//! * `tags` keeps every snapshot matching one of the entries. As in restic's
//!   `--keep-tag`, an entry may list several comma-separated tags that must
//!   *all* be present (`"daily,db"`), and the empty entry `""` matches
//!   snapshots without any tag. An entry without commas is a single tag, so
//!   `tags: ["nightly", "manual"]` keeps snapshots with any of those tags.
//! * A snapshot is kept if any rule keeps it (the results are ORed) and its
//!   [`Decision`] lists every rule that did.
//!
//! Bulwark's additions and safety nets:
//!
//! * A snapshot under an active [`Hold`] is always kept and carries a `hold
//!   ...` reason. Holds are applied on top of the rules: held snapshots still
//!   take part in (and use up) the counted rules like any other snapshot, so
//!   adding or removing a hold never changes what happens to the others.
//! * Rules that keep nothing (all unset or zero) are an error
//!   ([`PlanError::EmptyPolicy`]), never "remove everything"; restic refuses
//!   too ("no policy was specified, no snapshots will be removed").
//! * A plan that would remove every snapshot of a non-empty list is an error
//!   ([`PlanError::WouldRemoveAll`]), like restic's "refusing to delete last
//!   snapshot of snapshot group". Apply [`plan`] to each group separately
//!   (see [`crate::group`]) so this check works per history.

use std::borrow::Borrow;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::CalendarDuration;

/// The count meaning "keep all": restic's `unlimited` (`-1` before 0.17).
pub const UNLIMITED: u32 = u32::MAX;

/// A retention policy: restic's `--keep-*` options.
///
/// Counts are `None` (not set), `Some(0)` (also not set, as in restic),
/// `Some(n)` or `Some(UNLIMITED)`. In serialized form a count may be written
/// as a number, `-1` or `"unlimited"`; unlimited is written `"unlimited"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepRules {
    /// `--keep-within`: keep everything newer than this, measured back from
    /// the [`WithinReference`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<CalendarDuration>,
    /// `--keep-last`: keep the n newest snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "count_serde")]
    pub yearly: Option<u32>,
    /// `--keep-tag`: each entry is one tag, or several comma-separated tags
    /// that must all be present; `""` matches untagged snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl KeepRules {
    /// True when no rule would keep anything: every count is unset or zero,
    /// `within` is unset or zero and there are no tags. [`plan`] refuses such
    /// rules. (Restic's `ExpirePolicy.Empty()` treats zero values the same.)
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| n.unwrap_or(0) == 0)
            && self.within.is_none_or(|d| d.is_zero())
            && self.tags.is_empty()
    }

    fn counts(&self) -> [(Period, Option<u32>); 6] {
        [
            (Period::Last, self.last),
            (Period::Hourly, self.hourly),
            (Period::Daily, self.daily),
            (Period::Weekly, self.weekly),
            (Period::Monthly, self.monthly),
            (Period::Yearly, self.yearly),
        ]
    }
}

/// A one-line summary like restic's "Applying Policy: ..." line, e.g.
/// `keep 3 latest, 7 daily, 12 monthly snapshots, all snapshots within 30d
/// of the newest and all snapshots tagged nightly`.
impl fmt::Display for KeepRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let counted: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|&(period, n)| match n {
                None | Some(0) => None,
                Some(UNLIMITED) => Some(format!("all {}", period.noun())),
                Some(n) => Some(format!("{n} {}", period.noun())),
            })
            .collect();
        if !counted.is_empty() {
            parts.push(format!("{} snapshots", counted.join(", ")));
        }
        if let Some(d) = self.within.filter(|d| !d.is_zero()) {
            parts.push(format!("all snapshots within {d} of the reference time"));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|t| TagRule::parse(t).label).collect();
            parts.push(format!("all snapshots tagged {}", tags.join(" or ")));
        }
        if parts.is_empty() {
            f.write_str("keep nothing (empty policy)")
        } else {
            write!(f, "keep {}", parts.join(" and "))
        }
    }
}

/// Parses a keep count the way restic's `ForgetPolicyCount` does: a
/// non-negative integer, or `unlimited`; `-1` (restic before 0.17) is also
/// accepted as unlimited. Other negative values are rejected.
pub fn parse_keep_count(s: &str) -> Result<u32, KeepCountError> {
    let s = s.trim();
    if s == "unlimited" || s == "-1" {
        return Ok(UNLIMITED);
    }
    if s.starts_with('-') {
        return Err(KeepCountError::Negative(s.to_string()));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KeepCountError::Invalid(s.to_string()));
    }
    match s.parse::<u32>() {
        Ok(n) if n != UNLIMITED => Ok(n),
        _ => Err(KeepCountError::TooLarge(s.to_string())),
    }
}

/// Why [`parse_keep_count`] rejected a count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepCountError {
    #[error("invalid keep count {0:?}: negative values are not allowed, use \"unlimited\" instead")]
    Negative(String),
    #[error("invalid keep count {0:?}: too large (use \"unlimited\" to keep all)")]
    TooLarge(String),
    #[error("invalid keep count {0:?}: expected a whole number or \"unlimited\"")]
    Invalid(String),
}

/// A legal or contractual hold on a snapshot. While active, the snapshot is
/// kept whatever the rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Held while `now < until`; from `until` on the hold has expired.
    Until(DateTime<Utc>),
    /// Held until the hold is lifted explicitly.
    Indefinite,
}

impl Hold {
    /// Whether the hold still protects the snapshot at `now`. A hold with an
    /// expiry is active strictly before it: at `until` itself it has expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        match self {
            Hold::Until(until) => now < *until,
            Hold::Indefinite => true,
        }
    }

    /// `hold until 2027-01-01` (the date alone when the hold ends at midnight
    /// UTC, RFC 3339 otherwise) or `hold (no expiry)`.
    pub fn reason(&self) -> String {
        match self {
            Hold::Until(until) if until.time() == NaiveTime::MIN => {
                format!("hold until {}", until.format("%Y-%m-%d"))
            }
            Hold::Until(until) => {
                format!(
                    "hold until {}",
                    until.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                )
            }
            Hold::Indefinite => "hold (no expiry)".to_string(),
        }
    }
}

/// A snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    /// When the snapshot was taken, with the UTC offset of the machine that
    /// took it: calendar buckets are computed on this wall clock.
    pub time: DateTime<FixedOffset>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `None`: not held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

impl Candidate {
    pub fn new(id: impl Into<String>, time: DateTime<FixedOffset>) -> Self {
        Candidate {
            id: id.into(),
            time,
            tags: Vec::new(),
            hold: None,
        }
    }

    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_hold(mut self, hold: Hold) -> Self {
        self.hold = Some(hold);
        self
    }

    /// The hold protecting this snapshot at `now`, if any.
    pub fn active_hold(&self, now: DateTime<Utc>) -> Option<Hold> {
        self.hold.filter(|h| h.is_active(now))
    }
}

/// What `within` is measured back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithinReference {
    /// Restic's behaviour and the default: the newest snapshot of the list
    /// (ignoring snapshots dated after `now`, as restic does since 0.16).
    ///
    /// Measuring from the newest snapshot rather than from the clock means
    /// that a host which stopped backing up keeps its last `within` worth of
    /// history forever, instead of losing everything once its last backup is
    /// older than `within`: a broken backup job must never make retention
    /// delete the backups that still exist. Ignoring future-dated snapshots
    /// means one snapshot with a wrong clock cannot push the window forward
    /// and expire everything else (future snapshots themselves are kept).
    #[default]
    Newest,
    /// Measure from `now` (the `now` passed to [`plan`], in UTC): for policy
    /// evaluation like "what would be kept if nothing new arrived". With this
    /// reference an abandoned history can age out completely; [`plan`] still
    /// refuses to remove every snapshot of a list.
    Now,
}

/// The verdict for one input snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why it is kept, in this order: hold, tags, within, last, hourly,
    /// daily, weekly, monthly, yearly. Empty exactly when `keep` is false.
    ///
    /// Forms: `hold until 2027-01-01`, `hold (no expiry)`, `tag nightly`,
    /// `tag daily,db`, `tag (untagged)`, `within 30d`, `last 3`,
    /// `hourly snapshot 2026-11-20T14`, `daily snapshot 2026-11-20`,
    /// `weekly snapshot 2026-W47`, `monthly snapshot 2026-11`,
    /// `yearly snapshot 2026`, and for the oldest-snapshot rule the same with
    /// an `oldest ` prefix (`oldest daily snapshot 2026-11-20`). `last` and
    /// `within` name the rule (`last 3`, `last unlimited`), the calendar
    /// rules name the bucket on the snapshot's own wall clock.
    pub reasons: Vec<String>,
}

/// Why [`plan`] refused to produce a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "no retention rule is set (every keep option is empty or zero): refusing to plan, \
         as an empty policy would remove every snapshot"
    )]
    EmptyPolicy,
    #[error(
        "refusing to remove all {count} snapshots: none of them matches the retention rules \
         or is held"
    )]
    WouldRemoveAll { count: usize },
}

/// Decides, for each snapshot, whether to keep it and why.
///
/// Returns one [`Decision`] per input, in input order. `now` is used for
/// holds (a hold is active while `now < until`), to ignore future-dated
/// snapshots when finding the newest one, and as the reference for
/// [`WithinReference::Now`]. The input order only matters between snapshots
/// with the same instant (the earlier one counts as newer).
///
/// Errors: [`PlanError::EmptyPolicy`] if `rules` keep nothing (even for an
/// empty list), [`PlanError::WouldRemoveAll`] if the list is not empty and
/// nothing would be kept.
pub fn plan<C: Borrow<Candidate>>(
    rules: &KeepRules,
    snapshots: &[C],
    now: DateTime<Utc>,
    within_reference: WithinReference,
) -> Result<Vec<Decision>, PlanError> {
    if rules.is_empty() {
        return Err(PlanError::EmptyPolicy);
    }
    let snaps: Vec<&Candidate> = snapshots.iter().map(Borrow::borrow).collect();
    let n = snaps.len();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];

    for (i, s) in snaps.iter().enumerate() {
        if let Some(hold) = s.active_hold(now) {
            reasons[i].push(hold.reason());
        }
    }

    // Newest first; `sort_by` is stable, so equal instants keep input order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| snaps[b].time.cmp(&snaps[a].time));

    let tag_rules: Vec<TagRule> = rules.tags.iter().map(|t| TagRule::parse(t)).collect();
    let within = within_cutoff(rules, &snaps, &order, now, within_reference);
    let mut counters: Vec<Counter> = rules
        .counts()
        .into_iter()
        .filter_map(|(period, count)| {
            count.filter(|&c| c > 0).map(|count| Counter {
                period,
                count,
                remaining: count,
                previous: None,
            })
        })
        .collect();

    for (pos, &i) in order.iter().enumerate() {
        let snap = snaps[i];
        let out = &mut reasons[i];
        for rule in &tag_rules {
            if rule.matches(&snap.tags) {
                out.push(format!("tag {}", rule.label));
            }
        }
        if let Some(within) = &within
            && within.contains(&snap.time)
        {
            out.push(within.reason.clone());
        }
        let is_oldest = pos + 1 == n;
        for counter in &mut counters {
            if counter.remaining == 0 {
                continue;
            }
            let bucket = counter.period.bucket(&snap.time, pos);
            let new_bucket = counter.previous != Some(bucket);
            if new_bucket || is_oldest {
                counter.previous = Some(bucket);
                if counter.remaining != UNLIMITED {
                    counter.remaining -= 1;
                }
                out.push(counter.reason(&snap.time, !new_bucket));
            }
        }
    }

    if n > 0 && reasons.iter().all(Vec::is_empty) {
        return Err(PlanError::WouldRemoveAll { count: n });
    }

    Ok(snaps
        .iter()
        .zip(reasons)
        .map(|(s, reasons)| Decision {
            id: s.id.clone(),
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect())
}

/// The `within` rule, resolved against its reference time.
struct Within {
    /// Snapshots strictly after this are kept; `None`: every snapshot is.
    cutoff: Option<DateTime<FixedOffset>>,
    reason: String,
}

impl Within {
    fn contains(&self, t: &DateTime<FixedOffset>) -> bool {
        self.cutoff.is_none_or(|cutoff| *t > cutoff)
    }
}

/// `None` if `within` is not set.
fn within_cutoff(
    rules: &KeepRules,
    snaps: &[&Candidate],
    order: &[usize],
    now: DateTime<Utc>,
    reference: WithinReference,
) -> Option<Within> {
    let d = rules.within.filter(|d| !d.is_zero())?;
    let reference_time = match reference {
        // Restic's findLatestTimestamp: the newest snapshot strictly before
        // now. `order` is newest first, so the first match is the newest and,
        // among equal instants, the first in input order.
        WithinReference::Newest => order
            .iter()
            .map(|&i| snaps[i].time)
            .find(|t| t.with_timezone(&Utc) < now),
        WithinReference::Now => Some(now.fixed_offset()),
    };
    // No reference (every snapshot is in the future, restic then measures
    // from year 1) or a cutoff before chrono's range: everything is within.
    Some(Within {
        cutoff: reference_time.and_then(|t| d.before(&t)),
        reason: format!("within {d}"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    fn noun(self) -> &'static str {
        match self {
            Period::Last => "latest",
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// The bucket of `t` on its own wall clock, as one integer like restic's
    /// `ymdh`/`ymd`/`yw`/`ym`/`y`; `last` puts every snapshot in its own bucket.
    fn bucket(self, t: &DateTime<FixedOffset>, pos: usize) -> i64 {
        let local = t.naive_local();
        let (y, m, d, h) = (
            i64::from(local.year()),
            i64::from(local.month()),
            i64::from(local.day()),
            i64::from(local.hour()),
        );
        match self {
            Period::Last => pos as i64,
            Period::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Period::Daily => (y * 100 + m) * 100 + d,
            Period::Weekly => {
                let week = local.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Monthly => y * 100 + m,
            Period::Yearly => y,
        }
    }

    fn label(self, t: &DateTime<FixedOffset>) -> String {
        let local = t.naive_local();
        match self {
            Period::Last => String::new(),
            Period::Hourly => local.format("%Y-%m-%dT%H").to_string(),
            Period::Daily => local.format("%Y-%m-%d").to_string(),
            Period::Weekly => {
                let week = local.iso_week();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => local.format("%Y-%m").to_string(),
            Period::Yearly => format!("{:04}", local.year()),
        }
    }
}

/// One counted rule while walking the snapshots (restic's `buckets[i]`).
struct Counter {
    period: Period,
    count: u32,
    remaining: u32,
    /// Bucket of the previously kept snapshot. While counts remain every new
    /// bucket is kept, so this is also the previous snapshot's bucket.
    previous: Option<i64>,
}

impl Counter {
    fn reason(&self, t: &DateTime<FixedOffset>, oldest_extra: bool) -> String {
        let prefix = if oldest_extra { "oldest " } else { "" };
        match self.period {
            Period::Last if self.count == UNLIMITED => format!("{prefix}last unlimited"),
            Period::Last => format!("{prefix}last {}", self.count),
            period => format!("{prefix}{} snapshot {}", period.noun(), period.label(t)),
        }
    }
}

/// One `--keep-tag` entry.
struct TagRule {
    /// `None`: matches untagged snapshots only. Otherwise all of these.
    all_of: Option<Vec<String>>,
    label: String,
}

impl TagRule {
    fn parse(entry: &str) -> TagRule {
        let all_of: Vec<String> = entry
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if all_of.is_empty() {
            TagRule {
                all_of: None,
                label: "(untagged)".to_string(),
            }
        } else {
            TagRule {
                label: all_of.join(","),
                all_of: Some(all_of),
            }
        }
    }

    fn matches(&self, tags: &[String]) -> bool {
        match &self.all_of {
            None => tags.is_empty(),
            Some(all_of) => all_of.iter().all(|want| tags.iter().any(|t| t == want)),
        }
    }
}

/// Serde for keep counts: numbers, `-1` or `"unlimited"` in; numbers or
/// `"unlimited"` out.
mod count_serde {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    use super::UNLIMITED;

    pub fn serialize<S: Serializer>(value: &Option<u32>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_none(),
            Some(UNLIMITED) => serializer.serialize_str("unlimited"),
            Some(n) => serializer.serialize_u32(*n),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }

    struct CountVisitor;

    const EXPECTED: &str = "a non-negative whole number, -1 or \"unlimited\"";

    impl<'de> Visitor<'de> for CountVisitor {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(CountVisitor)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            match u32::try_from(v) {
                Ok(n) if n != UNLIMITED => Ok(Some(n)),
                _ => Err(E::custom(format!(
                    "keep count {v} is too large (use \"unlimited\" to keep all)"
                ))),
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            match v {
                -1 => Ok(Some(UNLIMITED)),
                v if v < 0 => Err(E::custom(format!(
                    "keep count {v}: negative values are not allowed, use \"unlimited\" instead"
                ))),
                v => self.visit_u64(v as u64),
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            super::parse_keep_count(v).map(Some).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        t(s).with_timezone(&Utc)
    }

    fn snap(id: &str, time: &str) -> Candidate {
        Candidate::new(id, t(time))
    }

    const NOW: &str = "2027-06-01T00:00:00Z";

    fn run(rules: &KeepRules, snaps: &[Candidate]) -> Vec<Decision> {
        plan(rules, snaps, utc(NOW), WithinReference::Newest).unwrap()
    }

    /// `id: reasons` for kept snapshots only, in input order.
    fn kept(decisions: &[Decision]) -> Vec<(String, Vec<String>)> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.id.clone(), d.reasons.clone()))
            .collect()
    }

    fn kept_ids(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect()
    }

    fn r(id: &str, reasons: &[&str]) -> (String, Vec<String>) {
        (
            id.to_string(),
            reasons.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn empty_rules_are_refused() {
        let snaps = [snap("a", "2026-01-01T00:00:00Z")];
        let now = utc(NOW);
        assert_eq!(
            plan(&KeepRules::default(), &snaps, now, WithinReference::Newest),
            Err(PlanError::EmptyPolicy)
        );
        let zeroes = KeepRules {
            last: Some(0),
            hourly: Some(0),
            daily: Some(0),
            weekly: Some(0),
            monthly: Some(0),
            yearly: Some(0),
            within: Some(CalendarDuration::ZERO),
            tags: vec![],
        };
        assert!(zeroes.is_empty());
        assert_eq!(
            plan(&zeroes, &snaps, now, WithinReference::Newest),
            Err(PlanError::EmptyPolicy)
        );
        // Even for an empty list: the configuration is wrong either way.
        let none: [Candidate; 0] = [];
        assert_eq!(
            plan(&zeroes, &none, now, WithinReference::Newest),
            Err(PlanError::EmptyPolicy)
        );
        assert!(
            !KeepRules {
                tags: vec![String::new()],
                ..Default::default()
            }
            .is_empty()
        );
        assert!(
            !KeepRules {
                yearly: Some(1),
                ..Default::default()
            }
            .is_empty()
        );
        assert!(
            !KeepRules {
                within: Some(CalendarDuration::hours(1)),
                ..Default::default()
            }
            .is_empty()
        );
        assert!(PlanError::EmptyPolicy.to_string().contains("refusing"));
    }

    #[test]
    fn empty_list_gives_empty_plan() {
        let rules = KeepRules {
            last: Some(1),
            ..Default::default()
        };
        let none: [Candidate; 0] = [];
        assert_eq!(
            plan(&rules, &none, utc(NOW), WithinReference::Newest),
            Ok(vec![])
        );
    }

    #[test]
    fn keep_last_keeps_the_newest_by_time_not_input_order() {
        let snaps = [
            snap("c", "2026-01-03T00:00:00Z"),
            snap("a", "2026-01-01T00:00:00Z"),
            snap("e", "2026-01-05T00:00:00Z"),
            snap("b", "2026-01-02T00:00:00Z"),
            snap("d", "2026-01-04T00:00:00Z"),
        ];
        let rules = KeepRules {
            last: Some(3),
            ..Default::default()
        };
        let decisions = run(&rules, &snaps);
        // One decision per input, in input order.
        let ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "e", "b", "d"]);
        assert_eq!(
            kept(&decisions),
            [
                r("c", &["last 3"]),
                r("e", &["last 3"]),
                r("d", &["last 3"])
            ]
        );
        for d in &decisions {
            assert_eq!(d.keep, !d.reasons.is_empty());
        }
    }

    #[test]
    fn keep_last_more_than_available_keeps_all() {
        let snaps = [
            snap("a", "2026-01-01T00:00:00Z"),
            snap("b", "2026-01-02T00:00:00Z"),
        ];
        let rules = KeepRules {
            last: Some(10),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["a", "b"]);
        let rules = KeepRules {
            last: Some(UNLIMITED),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [r("a", &["last unlimited"]), r("b", &["last unlimited"])]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let snaps = [
            snap("d1-morning", "2026-11-20T08:00:00Z"),
            snap("d1-evening", "2026-11-20T20:00:00Z"),
            snap("d2-morning", "2026-11-21T08:00:00Z"),
            snap("d2-noon", "2026-11-21T12:00:00Z"),
            snap("d3", "2026-11-22T01:00:00Z"),
        ];
        let rules = KeepRules {
            daily: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("d2-noon", &["daily snapshot 2026-11-21"]),
                r("d3", &["daily snapshot 2026-11-22"]),
            ]
        );
    }

    #[test]
    fn ties_in_the_same_bucket_keep_the_first_in_input_order() {
        // Same instant twice (e.g. imported from two repositories).
        let snaps = [
            snap("older", "2026-11-20T01:00:00Z"),
            snap("first", "2026-11-20T09:00:00Z"),
            snap("second", "2026-11-20T09:00:00Z"),
        ];
        let rules = KeepRules {
            daily: Some(1),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [r("first", &["daily snapshot 2026-11-20"])]
        );
        let swapped = [snaps[0].clone(), snaps[2].clone(), snaps[1].clone()];
        assert_eq!(kept_ids(&run(&rules, &swapped)), ["second"]);
        // keep_last 1 picks the same one.
        let rules = KeepRules {
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["first"]);
    }

    #[test]
    fn oldest_snapshot_is_kept_while_counts_remain() {
        // Two days of data, daily 5: the oldest is kept as well although its
        // day already has a kept snapshot (restic >= 0.16).
        let snaps = [
            snap("a", "2026-11-20T08:00:00Z"),
            snap("b", "2026-11-20T20:00:00Z"),
            snap("c", "2026-11-21T08:00:00Z"),
            snap("d", "2026-11-21T12:00:00Z"),
        ];
        let rules = KeepRules {
            daily: Some(5),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("a", &["oldest daily snapshot 2026-11-20"]),
                r("b", &["daily snapshot 2026-11-20"]),
                r("d", &["daily snapshot 2026-11-21"]),
            ]
        );
        // With exactly enough counts for the buckets, no extra keep.
        let rules = KeepRules {
            daily: Some(2),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["b", "d"]);
        // Unlimited always reaches the oldest.
        let rules = KeepRules {
            daily: Some(UNLIMITED),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["a", "b", "d"]);
        // A single snapshot is simply the newest of its bucket.
        let one = [snap("x", "2026-11-20T08:00:00Z")];
        assert_eq!(
            kept(&run(&rules, &one)),
            [r("x", &["daily snapshot 2026-11-20"])]
        );
    }

    #[test]
    fn unlimited_keeps_one_per_bucket_forever() {
        let snaps: Vec<Candidate> = (0..40)
            .map(|i| {
                // Two snapshots per month for 20 months, from 2025-01.
                let month0 = i / 2;
                let day = if i % 2 == 0 { 5 } else { 25 };
                snap(
                    &format!("s{i}"),
                    &format!(
                        "{}-{:02}-{day:02}T10:00:00Z",
                        2025 + month0 / 12,
                        month0 % 12 + 1
                    ),
                )
            })
            .collect();
        let rules = KeepRules {
            monthly: Some(UNLIMITED),
            ..Default::default()
        };
        let decisions = run(&rules, &snaps);
        let kept = kept_ids(&decisions);
        // Newest of each of the 20 months (the 25th) plus the oldest overall.
        assert_eq!(kept.len(), 21);
        assert_eq!(kept[0], "s0");
        assert_eq!(decisions[0].reasons, ["oldest monthly snapshot 2025-01"]);
        assert!(
            kept[1..]
                .iter()
                .all(|id| id[1..].parse::<u32>().unwrap() % 2 == 1)
        );
        assert_eq!(decisions[39].reasons, ["monthly snapshot 2026-08"]);
    }

    #[test]
    fn weekly_uses_iso_weeks_and_yearly_uses_calendar_years() {
        // 2024-12-29 is a Sunday (2024-W52); 2024-12-30 is the Monday of
        // 2025-W01, the same ISO week as 2025-01-01.
        let snaps = [
            snap("sun", "2024-12-29T12:00:00Z"),
            snap("mon", "2024-12-30T12:00:00Z"),
            snap("wed", "2025-01-01T12:00:00Z"),
        ];
        let rules = KeepRules {
            weekly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("sun", &["weekly snapshot 2024-W52"]),
                r("wed", &["weekly snapshot 2025-W01"])
            ]
        );
        let rules = KeepRules {
            yearly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("mon", &["yearly snapshot 2024"]),
                r("wed", &["yearly snapshot 2025"])
            ]
        );
        // 2026 has 53 ISO weeks: 2027-01-01 (Friday) is in 2026-W53,
        // 2027-01-04 (Monday) starts 2027-W01.
        let snaps = [
            snap("w52", "2026-12-27T12:00:00Z"),
            snap("thu", "2026-12-31T12:00:00Z"),
            snap("fri", "2027-01-01T12:00:00Z"),
            snap("next", "2027-01-04T12:00:00Z"),
        ];
        let rules = KeepRules {
            weekly: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("w52", &["weekly snapshot 2026-W52"]),
                r("fri", &["weekly snapshot 2026-W53"]),
                r("next", &["weekly snapshot 2027-W01"]),
            ]
        );
    }

    #[test]
    fn buckets_use_each_snapshots_own_offset() {
        // a: 23:30 on the 20th in New York (04:30 UTC on the 21st).
        // b: 05:00 on the 21st in +01:00 (04:00 UTC on the 21st), older.
        // In UTC both are on the 21st; on their own clocks they are not.
        let snaps = [
            snap("a", "2026-11-20T23:30:00-05:00"),
            snap("b", "2026-11-21T05:00:00+01:00"),
        ];
        let rules = KeepRules {
            daily: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("a", &["daily snapshot 2026-11-20"]),
                r("b", &["daily snapshot 2026-11-21"])
            ]
        );
        // One instant seen through two offsets lands on two local days.
        let snaps = [
            snap("utc", "2026-11-21T02:00:00+00:00"),
            snap("ny", "2026-11-20T21:00:00-05:00"),
        ];
        assert_eq!(snaps[0].time, snaps[1].time);
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("utc", &["daily snapshot 2026-11-21"]),
                r("ny", &["daily snapshot 2026-11-20"])
            ]
        );
        let rules = KeepRules {
            daily: Some(1),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["utc"]);
        // Months and years too: 23:00 on Dec 31st in -02:00 is January in UTC.
        let snaps = [snap("nye", "2026-12-31T23:00:00-02:00")];
        let rules = KeepRules {
            monthly: Some(1),
            yearly: Some(1),
            hourly: Some(1),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [r(
                "nye",
                &[
                    "hourly snapshot 2026-12-31T23",
                    "monthly snapshot 2026-12",
                    "yearly snapshot 2026"
                ]
            )]
        );
    }

    #[test]
    fn mixed_offsets_compare_with_the_previous_snapshot_like_restic() {
        // Newest first: x (local 20th), y (local 21st), z (local 20th).
        // Restic keeps a snapshot whenever its bucket differs from the
        // previous one's, so z is kept even though the 20th was already used.
        let snaps = [
            snap("x", "2026-11-20T23:00:00-10:00"), // 09:00Z on the 21st
            snap("y", "2026-11-21T20:00:00+14:00"), // 06:00Z on the 21st
            snap("z", "2026-11-20T23:00:00+00:00"), // 23:00Z on the 20th
        ];
        let rules = KeepRules {
            daily: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("x", &["daily snapshot 2026-11-20"]),
                r("y", &["daily snapshot 2026-11-21"]),
                r("z", &["daily snapshot 2026-11-20"]),
            ]
        );
    }

    #[test]
    fn hourly_labels() {
        let snaps = [
            snap("a", "2026-11-20T14:10:00+01:00"),
            snap("b", "2026-11-20T14:50:00+01:00"),
            snap("c", "2026-11-20T15:05:00+01:00"),
        ];
        let rules = KeepRules {
            hourly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("b", &["hourly snapshot 2026-11-20T14"]),
                r("c", &["hourly snapshot 2026-11-20T15"])
            ]
        );
    }

    #[test]
    fn within_is_strictly_after_newest_minus_duration() {
        let snaps = [
            snap("boundary", "2026-10-28T02:00:00Z"),
            snap("just-inside", "2026-10-28T02:00:01Z"),
            snap("newest", "2026-11-27T02:00:00Z"),
            snap("old", "2026-01-01T00:00:00Z"),
        ];
        let rules = KeepRules {
            within: Some(CalendarDuration::days(30)),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("just-inside", &["within 30d"]),
                r("newest", &["within 30d"])
            ]
        );
    }

    #[test]
    fn within_uses_go_month_arithmetic_in_the_newest_snapshots_offset() {
        // 2026-03-31 minus one month is "February 31st" = March 3rd.
        let snaps = [
            snap("newest", "2026-03-31T12:00:00+00:00"),
            snap("mar3", "2026-03-03T12:00:00+00:00"),
            snap("mar3+1s", "2026-03-03T12:00:01+00:00"),
            snap("feb28", "2026-02-28T13:00:00+00:00"),
        ];
        let rules = KeepRules {
            within: Some("1m".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(kept_ids(&run(&rules, &snaps)), ["newest", "mar3+1s"]);
    }

    #[test]
    fn within_newest_vs_now_for_an_abandoned_host() {
        // Daily backups that stopped a year before `now`.
        let snaps: Vec<Candidate> = (1..=10)
            .map(|d| snap(&format!("d{d}"), &format!("2026-05-{d:02}T02:00:00Z")))
            .collect();
        let now = utc("2027-05-10T00:00:00Z");
        let rules = KeepRules {
            within: Some(CalendarDuration::days(7)),
            ..Default::default()
        };
        // Newest (restic): the last 7 days of the history survive.
        let decisions = plan(&rules, &snaps, now, WithinReference::Newest).unwrap();
        assert_eq!(
            kept_ids(&decisions),
            ["d4", "d5", "d6", "d7", "d8", "d9", "d10"]
        );
        // Now: nothing is within 7 days of now, and removing everything is refused.
        assert_eq!(
            plan(&rules, &snaps, now, WithinReference::Now),
            Err(PlanError::WouldRemoveAll { count: 10 })
        );
        // With another rule keeping something, Now just drops the within keeps.
        let rules = KeepRules {
            last: Some(1),
            ..rules
        };
        let decisions = plan(&rules, &snaps, now, WithinReference::Now).unwrap();
        assert_eq!(kept(&decisions), [r("d10", &["last 1"])]);
        // And Now keeps what is recent relative to the clock.
        let now = utc("2026-05-08T12:00:00Z");
        let rules = KeepRules {
            within: Some(CalendarDuration::days(2)),
            ..Default::default()
        };
        let decisions = plan(&rules, &snaps, now, WithinReference::Now).unwrap();
        // Cutoff 2026-05-06T12:00Z; d9 and d10 are in the future and kept too.
        assert_eq!(kept_ids(&decisions), ["d7", "d8", "d9", "d10"]);
    }

    #[test]
    fn within_ignores_future_snapshots_when_finding_the_newest() {
        let now = utc("2026-11-27T00:00:00Z");
        let snaps = [
            snap("ten-days", "2026-11-17T00:00:00Z"),
            snap("five-days", "2026-11-22T00:00:00Z"),
            snap("skewed", "2027-03-01T00:00:00Z"), // clock was wrong
        ];
        let rules = KeepRules {
            within: Some(CalendarDuration::days(7)),
            ..Default::default()
        };
        // Reference is five-days (the newest before now): cutoff 2026-11-15.
        let decisions = plan(&rules, &snaps, now, WithinReference::Newest).unwrap();
        assert_eq!(kept_ids(&decisions), ["ten-days", "five-days", "skewed"]);
        // All in the future: everything is within.
        let now = utc("2020-01-01T00:00:00Z");
        let decisions = plan(&rules, &snaps, now, WithinReference::Newest).unwrap();
        assert_eq!(kept_ids(&decisions).len(), 3);
    }

    #[test]
    fn tags_match_any_entry_and_all_tags_of_an_entry() {
        let snaps = [
            snap("nightly", "2026-11-20T00:00:00Z").with_tags(["nightly"]),
            snap("db-daily", "2026-11-19T00:00:00Z").with_tags(["db", "daily"]),
            snap("db-only", "2026-11-18T00:00:00Z").with_tags(["db"]),
            snap("untagged", "2026-11-17T00:00:00Z"),
            snap("other", "2026-11-16T00:00:00Z").with_tags(["manual"]),
        ];
        let rules = KeepRules {
            tags: vec!["nightly".into(), " daily , db ".into()],
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("nightly", &["tag nightly"]),
                r("db-daily", &["tag daily,db"])
            ]
        );
        let rules = KeepRules {
            tags: vec![String::new()],
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [r("untagged", &["tag (untagged)"])]
        );
        // Tags do not use up counts, and every matching entry is a reason.
        let rules = KeepRules {
            tags: vec!["db".into(), "daily".into()],
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [
                r("nightly", &["last 1"]),
                r("db-daily", &["tag db", "tag daily"]),
                r("db-only", &["tag db"]),
            ]
        );
    }

    #[test]
    fn tag_rules_matching_nothing_refuse_to_remove_everything() {
        let snaps = [
            snap("a", "2026-11-20T00:00:00Z"),
            snap("b", "2026-11-21T00:00:00Z"),
        ];
        let rules = KeepRules {
            tags: vec!["absent".into()],
            ..Default::default()
        };
        let err = plan(&rules, &snaps, utc(NOW), WithinReference::Newest).unwrap_err();
        assert_eq!(err, PlanError::WouldRemoveAll { count: 2 });
        assert!(
            err.to_string()
                .contains("refusing to remove all 2 snapshots")
        );
        // A hold is enough to make the plan acceptable.
        let held = [
            snaps[0].clone().with_hold(Hold::Indefinite),
            snaps[1].clone(),
        ];
        let decisions = plan(&rules, &held, utc(NOW), WithinReference::Newest).unwrap();
        assert_eq!(kept(&decisions), [r("a", &["hold (no expiry)"])]);
    }

    #[test]
    fn holds_keep_snapshots_until_they_expire() {
        let now = utc("2026-12-01T00:00:00Z");
        let snaps = [
            snap("newest", "2026-11-30T00:00:00Z"),
            snap("active", "2026-11-01T00:00:00Z")
                .with_hold(Hold::Until(utc("2027-01-01T00:00:00Z"))),
            snap("active-time", "2026-10-01T00:00:00Z")
                .with_hold(Hold::Until(utc("2026-12-01T00:00:01Z"))),
            snap("expires-now", "2026-09-01T00:00:00Z").with_hold(Hold::Until(now)),
            snap("expired", "2026-08-01T00:00:00Z")
                .with_hold(Hold::Until(utc("2026-11-01T00:00:00Z"))),
            snap("forever", "2020-01-01T00:00:00Z").with_hold(Hold::Indefinite),
        ];
        let rules = KeepRules {
            last: Some(1),
            ..Default::default()
        };
        let decisions = plan(&rules, &snaps, now, WithinReference::Newest).unwrap();
        assert_eq!(
            kept(&decisions),
            [
                r("newest", &["last 1"]),
                r("active", &["hold until 2027-01-01"]),
                r("active-time", &["hold until 2026-12-01T00:00:01Z"]),
                r("forever", &["hold (no expiry)"]),
            ]
        );
        // A held snapshot still takes part in the rules: holding the newest
        // does not make keep_last reach further back.
        let snaps = [
            snap("newest", "2026-11-30T00:00:00Z").with_hold(Hold::Indefinite),
            snap("second", "2026-11-29T00:00:00Z"),
        ];
        let decisions = plan(&rules, &snaps, now, WithinReference::Newest).unwrap();
        assert_eq!(
            kept(&decisions),
            [r("newest", &["hold (no expiry)", "last 1"])]
        );
        assert!(Hold::Until(now).is_active(now - chrono::Duration::seconds(1)));
        assert!(!Hold::Until(now).is_active(now));
    }

    #[test]
    fn reasons_come_in_a_fixed_order() {
        let snaps = [snap("only", "2026-11-27T02:00:00+00:00")
            .with_tags(["nightly"])
            .with_hold(Hold::Indefinite)];
        let rules = KeepRules {
            within: Some(CalendarDuration::days(30)),
            last: Some(3),
            hourly: Some(1),
            daily: Some(1),
            weekly: Some(1),
            monthly: Some(1),
            yearly: Some(1),
            tags: vec!["nightly".into()],
        };
        assert_eq!(
            kept(&run(&rules, &snaps)),
            [r(
                "only",
                &[
                    "hold (no expiry)",
                    "tag nightly",
                    "within 30d",
                    "last 3",
                    "hourly snapshot 2026-11-27T02",
                    "daily snapshot 2026-11-27",
                    "weekly snapshot 2026-W48",
                    "monthly snapshot 2026-11",
                    "yearly snapshot 2026",
                ]
            )]
        );
    }

    #[test]
    fn plan_accepts_borrowed_candidates() {
        let owned = [
            snap("a", "2026-11-20T00:00:00Z"),
            snap("b", "2026-11-21T00:00:00Z"),
        ];
        let borrowed: Vec<&Candidate> = owned.iter().collect();
        let rules = KeepRules {
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(
            plan(&rules, &borrowed, utc(NOW), WithinReference::Newest),
            plan(&rules, &owned, utc(NOW), WithinReference::Newest)
        );
    }

    #[test]
    fn keep_counts_parse_like_restic() {
        assert_eq!(parse_keep_count("7"), Ok(7));
        assert_eq!(parse_keep_count("0"), Ok(0));
        assert_eq!(parse_keep_count("unlimited"), Ok(UNLIMITED));
        assert_eq!(parse_keep_count("-1"), Ok(UNLIMITED));
        assert!(matches!(
            parse_keep_count("-2"),
            Err(KeepCountError::Negative(_))
        ));
        assert!(matches!(
            parse_keep_count("4294967295"),
            Err(KeepCountError::TooLarge(_))
        ));
        assert!(matches!(
            parse_keep_count("99999999999"),
            Err(KeepCountError::TooLarge(_))
        ));
        assert!(matches!(
            parse_keep_count("seven"),
            Err(KeepCountError::Invalid(_))
        ));
        assert!(matches!(
            parse_keep_count(""),
            Err(KeepCountError::Invalid(_))
        ));
        assert!(matches!(
            parse_keep_count("+3"),
            Err(KeepCountError::Invalid(_))
        ));
    }

    #[test]
    fn rules_serde_round_trip() {
        let json = r#"{"within":"1y6m","last":3,"daily":-1,"weekly":"unlimited","monthly":"12","tags":["nightly"]}"#;
        let rules: KeepRules = serde_json::from_str(json).unwrap();
        assert_eq!(
            rules,
            KeepRules {
                within: Some(CalendarDuration {
                    years: 1,
                    months: 6,
                    days: 0,
                    hours: 0
                }),
                last: Some(3),
                hourly: None,
                daily: Some(UNLIMITED),
                weekly: Some(UNLIMITED),
                monthly: Some(12),
                yearly: None,
                tags: vec!["nightly".into()],
            }
        );
        let back = serde_json::to_string(&rules).unwrap();
        assert_eq!(
            back,
            r#"{"within":"1y6m","last":3,"daily":"unlimited","weekly":"unlimited","monthly":12,"tags":["nightly"]}"#
        );
        assert_eq!(serde_json::from_str::<KeepRules>(&back).unwrap(), rules);
        assert_eq!(
            serde_json::from_str::<KeepRules>("{}").unwrap(),
            KeepRules::default()
        );
        assert_eq!(
            serde_json::from_str::<KeepRules>(r#"{"last":null}"#).unwrap(),
            KeepRules::default()
        );
        for bad in [
            r#"{"last":-2}"#,
            r#"{"last":4294967295}"#,
            r#"{"last":"lots"}"#,
            r#"{"within":"30x"}"#,
            r#"{"keep_last":1}"#,
            r#"{"last":1.5}"#,
        ] {
            assert!(serde_json::from_str::<KeepRules>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_display_summarises_the_policy() {
        let rules = KeepRules {
            within: Some(CalendarDuration::days(30)),
            last: Some(3),
            daily: Some(7),
            yearly: Some(UNLIMITED),
            tags: vec!["nightly".into(), "a,b".into()],
            ..Default::default()
        };
        assert_eq!(
            rules.to_string(),
            "keep 3 latest, 7 daily, all yearly snapshots and all snapshots within 30d of the \
             reference time and all snapshots tagged nightly or a,b"
        );
        assert_eq!(
            KeepRules::default().to_string(),
            "keep nothing (empty policy)"
        );
    }

    #[test]
    fn candidates_and_decisions_serialize() {
        let c = snap("abc", "2026-11-27T02:00:00+01:00")
            .with_tags(["x"])
            .with_hold(Hold::Until(utc("2027-01-01T00:00:00Z")));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"id":"abc","time":"2026-11-27T02:00:00+01:00","tags":["x"],"hold":{"until":"2027-01-01T00:00:00Z"}}"#
        );
        assert_eq!(serde_json::from_str::<Candidate>(&json).unwrap(), c);
        let indefinite = serde_json::to_string(&Hold::Indefinite).unwrap();
        assert_eq!(indefinite, r#""indefinite""#);
        let minimal: Candidate =
            serde_json::from_str(r#"{"id":"m","time":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(minimal, snap("m", "2026-01-01T00:00:00Z"));
    }
}
