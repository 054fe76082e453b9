//! Forged clocks: a snapshot's time is whatever the host that wrote it claimed, and retention
//! trusts it. A compromised host could date snapshots in the future (so `last N` keeps them and
//! drops the honest ones) or late on past days (so each daily, weekly or monthly bucket keeps the
//! forgery instead of the honest snapshot). The store records its own time for every object it
//! writes, out of the writer's reach; this module compares the two.
//!
//! Invariants:
//! - A snapshot whose claimed time runs ahead of the store's time by more than the tolerance, or
//!   behind it by more than the tolerance plus the backup's own recorded duration (at most
//!   [`MAX_EXCUSED_DURATION`]), is *suspicious*.
//! - `forget` keeps every suspicious snapshot, says so in its report, and plans the others as if
//!   the suspicious ones did not exist: they use up no count and fill no calendar bucket, so they
//!   cannot push an honest snapshot out.
//!
//! Honest snapshots that look backdated: a copy made long after the backup (the replica's store
//! records the copy), a snapshot changed by `tag` or `rewrite` much later, a `backup --time` in
//! the past. They are kept and listed, never removed; once reviewed, a forget run with a wider
//! tolerance (or none) applies the rules to them.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

/// The default tolerance: clocks of hosts and stores disagree by seconds, rarely by minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(3600);

/// The longest backup duration a snapshot's summary may excuse a backdate with. The summary is
/// the writer's claim too: a forger could say a backup took a year.
pub const MAX_EXCUSED_DURATION: Duration = Duration::from_secs(24 * 3600);

/// How `forget` judges claimed snapshot times against the store's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockCheck {
    /// How far a claimed time may run ahead of, or behind, the store's.
    pub tolerance: Duration,
    /// How far the caller's clock runs ahead of the store's: zero, except for a run on an
    /// injected clock (a simulation), whose snapshots are dated on that clock.
    pub clock_offset: chrono::Duration,
}

impl Default for ClockCheck {
    fn default() -> Self {
        ClockCheck {
            tolerance: DEFAULT_TOLERANCE,
            clock_offset: chrono::Duration::zero(),
        }
    }
}

/// Which way a claimed time is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skew {
    /// Dated after the store wrote it: no honest writer does that.
    Ahead,
    /// Dated well before the store wrote it (and before the backup could have started).
    Behind,
}

impl Skew {
    fn word(self) -> &'static str {
        match self {
            Skew::Ahead => "ahead",
            Skew::Behind => "behind",
        }
    }
}

/// A snapshot whose claimed time the store's record contradicts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClockWarning {
    pub id: String,
    pub short_id: String,
    /// The time the snapshot claims.
    pub claimed: DateTime<FixedOffset>,
    /// The time the store recorded for the snapshot's object (on the caller's clock).
    pub recorded: DateTime<Utc>,
    pub skew: Skew,
    /// How far off the claim is, in whole seconds beyond the backup's duration.
    pub off_by_s: u64,
}

impl ClockWarning {
    /// The keep reason `forget` gives: `suspicious clock: 30d ahead of the store`.
    pub fn reason(&self) -> String {
        format!(
            "suspicious clock: {} {} of the store",
            bulwark_policy::duration::human(Duration::from_secs(self.off_by_s)),
            self.skew.word()
        )
    }

    /// One line: `snapshot 1a2b3c4d claims 2027-01-01T00:00:00+00:00 but was stored
    /// 2026-12-01T10:00:00Z (31d ahead): kept, and left out of the retention rules`.
    pub fn describe(&self) -> String {
        format!(
            "snapshot {} claims {} but was stored {} ({} {}): kept, and left out of the retention rules",
            self.short_id,
            self.claimed.to_rfc3339(),
            self.recorded
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            bulwark_policy::duration::human(Duration::from_secs(self.off_by_s)),
            self.skew.word()
        )
    }
}

impl ClockCheck {
    /// Judge one snapshot: `claimed` its time, `took_s` the backup's recorded duration (none for
    /// snapshots without a summary), `stored` the store's time for its object.
    pub fn judge(
        &self,
        id: &bulwark_repo::Id,
        claimed: DateTime<FixedOffset>,
        took_s: Option<f64>,
        stored: DateTime<Utc>,
    ) -> Option<ClockWarning> {
        let recorded = stored + self.clock_offset;
        let claimed_utc = claimed.with_timezone(&Utc);
        let tolerance = chrono::Duration::from_std(self.tolerance).unwrap_or(chrono::Duration::MAX);
        let (skew, off) = if claimed_utc > recorded {
            (Skew::Ahead, claimed_utc - recorded)
        } else {
            let took = took_s
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(0, |s| s.min(MAX_EXCUSED_DURATION.as_secs_f64()) as i64);
            let behind = recorded - claimed_utc - chrono::Duration::seconds(took);
            (Skew::Behind, behind.max(chrono::Duration::zero()))
        };
        (off > tolerance).then(|| ClockWarning {
            id: id.to_hex(),
            short_id: id.short(),
            claimed,
            recorded,
            skew,
            off_by_s: off.num_seconds().max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn check(hours: u64) -> ClockCheck {
        ClockCheck {
            tolerance: Duration::from_secs(hours * 3600),
            clock_offset: chrono::Duration::zero(),
        }
    }

    #[test]
    fn claims_within_the_tolerance_either_way_pass() {
        let id = bulwark_repo::Id::default();
        let stored = at("2026-12-01T10:00:00Z").with_timezone(&Utc);
        let c = check(1);
        assert_eq!(c.judge(&id, at("2026-12-01T10:59:00Z"), None, stored), None);
        assert_eq!(c.judge(&id, at("2026-12-01T09:01:00Z"), None, stored), None);
        // The claimed offset is the host's; the instant is what counts.
        assert_eq!(
            c.judge(&id, at("2026-12-01T05:30:00-04:00"), None, stored),
            None
        );
    }

    #[test]
    fn claims_beyond_the_tolerance_are_ahead_or_behind() {
        let id = bulwark_repo::Id::default();
        let stored = at("2026-12-01T10:00:00Z").with_timezone(&Utc);
        let c = check(1);
        let w = c
            .judge(&id, at("2026-12-31T10:00:00Z"), None, stored)
            .unwrap();
        assert_eq!((w.skew, w.off_by_s), (Skew::Ahead, 30 * 86400));
        let w = c
            .judge(&id, at("2026-11-30T23:59:00Z"), None, stored)
            .unwrap();
        assert_eq!((w.skew, w.off_by_s), (Skew::Behind, 10 * 3600 + 60));
        assert!(w.describe().contains("behind"), "{}", w.describe());
    }

    #[test]
    fn a_long_backup_is_not_backdated_but_its_claimed_duration_is_bounded() {
        let id = bulwark_repo::Id::default();
        let stored = at("2026-12-01T10:00:00Z").with_timezone(&Utc);
        let c = check(1);
        // Started 90 minutes before its snapshot was stored, and says it took 80 minutes.
        assert_eq!(
            c.judge(&id, at("2026-12-01T08:30:00Z"), Some(4800.0), stored),
            None
        );
        // A hostile summary claiming a year of work excuses a day, no more.
        let w = c
            .judge(&id, at("2026-06-01T00:00:00Z"), Some(3.2e7), stored)
            .unwrap();
        assert_eq!(w.skew, Skew::Behind);
        let w = c
            .judge(&id, at("2026-11-30T04:00:00Z"), Some(30.0 * 3600.0), stored)
            .unwrap();
        assert_eq!(w.off_by_s, 6 * 3600);
        assert!(
            c.judge(&id, at("2026-12-01T08:30:00Z"), Some(f64::NAN), stored)
                .is_some()
        );
    }

    #[test]
    fn an_injected_clock_moves_the_stores_time_with_it() {
        let id = bulwark_repo::Id::default();
        let stored = at("2026-12-01T10:00:00Z").with_timezone(&Utc);
        let c = ClockCheck {
            clock_offset: chrono::Duration::days(-20),
            ..check(1)
        };
        assert_eq!(c.judge(&id, at("2026-11-11T10:00:00Z"), None, stored), None);
        assert!(
            c.judge(&id, at("2026-12-01T10:00:00Z"), None, stored)
                .is_some()
        );
    }
}
