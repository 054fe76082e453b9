//! "Is it due?": the decisions `run --due` and the daemon take, as pure functions of what has
//! happened and a clock. Each answers [`Due::Now`] with the reason, or when it will next be due,
//! so a scheduler can sleep until then and a tick that finds nothing due does nothing.
//!
//! Catching up after downtime is one run, not one per missed slot: a backup is due when the
//! newest backup is older than the latest scheduled slot, however many slots were missed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::schedule::Schedule;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "due")]
pub enum Due {
    /// Due now, and why.
    Now { reason: String },
    /// Not due before this instant.
    At { at: DateTime<Utc> },
    /// Never due again (a schedule without a next occurrence).
    Never,
}

impl Due {
    pub fn now(reason: impl Into<String>) -> Due {
        Due::Now {
            reason: reason.into(),
        }
    }

    pub fn is_now(&self) -> bool {
        matches!(self, Due::Now { .. })
    }

    /// When it becomes due: `now` itself when already due.
    pub fn when(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Due::Now { .. } => Some(now),
            Due::At { at } => Some(*at),
            Due::Never => None,
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A backup is due when there is none yet, or the latest scheduled slot came after the newest one.
pub fn backup(schedule: &Schedule, newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
    let Some(newest) = newest else {
        return Due::now("no backup on record");
    };
    if let Some(slot) = schedule.last_at_or_before(now)
        && newest < slot
    {
        return Due::now(format!(
            "the run scheduled for {} has not happened yet",
            utc(slot)
        ));
    }
    match schedule.next_after(now.max(newest)) {
        Some(at) => Due::At { at },
        None => Due::Never,
    }
}

/// The last restore test of a dataset, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastTest {
    pub finished: DateTime<Utc>,
    pub passed: bool,
}

/// A restore test is due when none is on record, when the last one failed (every run re-tests
/// until one passes), or when the last one is `every` old.
pub fn restore_test(every: Duration, last: Option<LastTest>, now: DateTime<Utc>) -> Due {
    match last {
        None => Due::now("no restore test on record"),
        Some(t) if !t.passed => {
            Due::now("the last restore test failed: re-testing until one passes")
        }
        Some(t) => {
            let at = t.finished.checked_add_signed(chrono(every));
            match at {
                Some(at) if at > now => Due::At { at },
                Some(_) => Due::now(format!(
                    "the last restore test passed at {}, {} ago",
                    utc(t.finished),
                    crate::duration::human((now - t.finished).to_std().unwrap_or(Duration::ZERO))
                )),
                None => Due::Never,
            }
        }
    }
}

/// A disaster-recovery drill is due when none is on record, when the last one failed (every
/// run drills again until one passes), or when the last one passed `every` ago.
pub fn drill(every: Duration, last: Option<LastTest>, now: DateTime<Utc>) -> Due {
    match last {
        None => Due::now("no disaster-recovery drill on record"),
        Some(t) if !t.passed => Due::now("the last drill failed: drilling again until one passes"),
        Some(t) => match t.finished.checked_add_signed(chrono(every)) {
            Some(at) if at > now => Due::At { at },
            Some(_) => Due::now(format!("the last drill passed at {}", utc(t.finished))),
            None => Due::Never,
        },
    }
}

/// Prune is due when forget removed snapshots since the last prune, when no prune is on record,
/// or when the last one is `every` old. Prune deletes nothing that is still needed, so running it
/// late only costs space; running it on every tick only costs time.
pub fn prune(
    every: Duration,
    last: Option<DateTime<Utc>>,
    forgot_since: bool,
    now: DateTime<Utc>,
) -> Due {
    if forgot_since {
        return Due::now("forget removed snapshots");
    }
    let Some(last) = last else {
        return Due::now("no prune on record");
    };
    match last.checked_add_signed(chrono(every)) {
        Some(at) if at > now => Due::At { at },
        Some(_) => Due::now(format!("the last prune ran at {}", utc(last))),
        None => Due::Never,
    }
}

/// The earliest of several decisions: what a scheduler waits for.
pub fn earliest<'a>(
    dues: impl IntoIterator<Item = &'a Due>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    dues.into_iter().filter_map(|d| d.when(now)).min()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn a_backup_is_due_once_per_missed_slot_run() {
        let s: Schedule = "daily at 02:00".parse().unwrap();
        assert!(backup(&s, None, t(0)).is_now());
        // Backed up at 02:05 today: not due until tomorrow's slot.
        assert_eq!(
            backup(&s, Some(t(2) + chrono::Duration::minutes(5)), t(10)),
            Due::At { at: t(26) }
        );
        // Three days of downtime: one catch-up run, then the next slot.
        let newest = t(-70);
        assert!(backup(&s, Some(newest), t(10)).is_now());
        assert_eq!(backup(&s, Some(t(10)), t(10)), Due::At { at: t(26) });
    }

    #[test]
    fn restore_tests_retest_after_a_failure_and_recur() {
        let every = Duration::from_secs(7 * 86_400);
        assert!(restore_test(every, None, t(0)).is_now());
        let failed = LastTest {
            finished: t(0),
            passed: false,
        };
        assert!(restore_test(every, Some(failed), t(1)).is_now());
        let passed = LastTest {
            finished: t(0),
            passed: true,
        };
        assert_eq!(
            restore_test(every, Some(passed), t(1)),
            Due::At { at: t(7 * 24) }
        );
        assert!(restore_test(every, Some(passed), t(7 * 24)).is_now());
    }

    #[test]
    fn prune_runs_daily_or_after_forget_removed_something() {
        let day = Duration::from_secs(86_400);
        assert!(prune(day, None, false, t(0)).is_now());
        assert_eq!(prune(day, Some(t(0)), false, t(1)), Due::At { at: t(24) });
        assert!(prune(day, Some(t(0)), true, t(1)).is_now());
        assert!(prune(day, Some(t(0)), false, t(24)).is_now());
        assert_eq!(
            earliest(
                &[Due::At { at: t(5) }, Due::Never, Due::At { at: t(3) }],
                t(0)
            ),
            Some(t(3))
        );
    }
}
