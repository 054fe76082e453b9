//! Status verdicts: given what happened (facts read from repositories and the ledger) and a clock,
//! is each commitment `met`, `at_risk` (will breach before the next scheduled run can fix it) or
//! `breached`? Pure: the caller gathers facts, this decides.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::commitments::daily_history;
use crate::config::{Config, Dataset, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    AtRisk,
    Breached,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestFact {
    pub time: DateTime<Utc>,
    pub passed: bool,
    pub duration_s: f64,
    /// Bytes the test restored, when it says (for throughput).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl RestoreTestFact {
    /// Bytes per second the test restored at.
    pub fn throughput(&self) -> Option<f64> {
        let b = self.bytes? as f64;
        (self.duration_s > 0.0 && b > 0.0).then(|| b / self.duration_s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaFact {
    pub repository: String,
    pub region: Option<String>,
    /// Time of the newest snapshot of the dataset on the replica.
    pub newest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetFacts {
    pub last_backup: Option<DateTime<Utc>>,
    pub oldest_backup: Option<DateTime<Utc>>,
    pub snapshots: usize,
    pub replicas: Vec<ReplicaFact>,
    pub last_restore_test: Option<RestoreTestFact>,
    pub last_passed_restore_test: Option<RestoreTestFact>,
    pub open_remediations: usize,
    /// Size of the newest backup (its files' bytes), for the RTO projection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Physical PostgreSQL datasets: when the newest WAL segment was archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wal: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aspect {
    pub name: &'static str,
    pub verdict: Verdict,
    pub target: String,
    pub actual: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    pub dataset: String,
    pub tier: Tier,
    pub verdict: Verdict,
    pub reason: String,
    pub aspects: Vec<Aspect>,
}

/// An age or a lag, in the one style of every message (`36h`, `2.5d`, `45m`).
fn hours(d: chrono::Duration) -> String {
    crate::duration::human(d.to_std().unwrap_or(Duration::ZERO))
}

fn std_h(d: Duration) -> String {
    crate::duration::human(d)
}

fn aspect(
    name: &'static str,
    verdict: Verdict,
    target: String,
    actual: String,
    reason: String,
) -> Aspect {
    Aspect {
        name,
        verdict,
        target,
        actual,
        reason,
    }
}

/// Recovery-point exposure for data whose newest copy is from `newest`.
fn exposure(
    name: &'static str,
    what: &str,
    d: &Dataset,
    rpo: Duration,
    newest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Aspect {
    let target = format!("≤ {}", std_h(rpo));
    let rpo_c = chrono::Duration::from_std(rpo).unwrap_or(chrono::Duration::MAX);
    let Some(newest) = newest else {
        return aspect(
            name,
            Verdict::Breached,
            target,
            "none".into(),
            format!("no {what} on record"),
        );
    };
    let age = now - newest;
    let actual = format!("{} old", hours(age));
    if age > rpo_c {
        return aspect(
            name,
            Verdict::Breached,
            target,
            actual,
            format!(
                "the newest {what} is {} old, past the RPO of {}",
                hours(age),
                std_h(rpo)
            ),
        );
    }
    // A scheduled run that has not produced a copy within the grace allowed for it to finish.
    let grace = chrono::Duration::hours(1);
    if let Some(last_run) = d.schedule.last_at_or_before(now)
        && last_run > newest + grace
        && now - last_run > grace
    {
        return aspect(
            name,
            Verdict::AtRisk,
            target,
            actual,
            format!(
                "the run scheduled for {} has not produced a {what}",
                last_run.format("%Y-%m-%d %H:%M UTC")
            ),
        );
    }
    if let Some(next) = d.schedule.next_after(now)
        && next - newest > rpo_c
    {
        return aspect(
            name,
            Verdict::AtRisk,
            target,
            actual,
            format!(
                "the next scheduled run ({}) comes after the RPO expires at {}",
                next.format("%Y-%m-%d %H:%M UTC"),
                (newest + rpo_c).format("%Y-%m-%d %H:%M UTC")
            ),
        );
    }
    aspect(
        name,
        Verdict::Met,
        target,
        actual,
        format!("newest {what} {} old", hours(age)),
    )
}

/// Recovery-point exposure of a physical dataset: the age of its newest archived WAL segment
/// (archiving is continuous, so half the RPO without a new segment already puts it at risk).
fn wal_exposure(rpo: Duration, facts: &DatasetFacts, now: DateTime<Utc>) -> Aspect {
    let target = format!("≤ {}", std_h(rpo));
    let rpo_c = chrono::Duration::from_std(rpo).unwrap_or(chrono::Duration::MAX);
    let (Some(_), Some(wal)) = (facts.last_backup, facts.last_wal) else {
        let what = if facts.last_backup.is_none() {
            "no base backup on record"
        } else {
            "no archived WAL segment on record"
        };
        return aspect("rpo", Verdict::Breached, target, "none".into(), what.into());
    };
    let age = now - wal;
    let actual = format!("newest WAL segment {} old", hours(age));
    let (verdict, reason) = if age > rpo_c {
        (
            Verdict::Breached,
            format!(
                "the newest archived WAL segment is {} old, past the RPO of {}",
                hours(age),
                std_h(rpo)
            ),
        )
    } else if age * 2 > rpo_c {
        (
            Verdict::AtRisk,
            format!(
                "no WAL segment archived for {}, over half the RPO: is archiving failing, or archive_timeout longer than the RPO?",
                hours(age)
            ),
        )
    } else {
        (
            Verdict::Met,
            format!("newest archived WAL segment {} old", hours(age)),
        )
    };
    aspect("rpo", verdict, target, actual, reason)
}

pub fn evaluate(
    config: &Config,
    d: &Dataset,
    facts: &DatasetFacts,
    now: DateTime<Utc>,
) -> DatasetStatus {
    let t = &config.targets;
    let mut aspects = vec![if d.method == crate::config::Method::Physical {
        wal_exposure(t.rpo, facts, now)
    } else {
        exposure("rpo", "backup", d, t.rpo, facts.last_backup, now)
    }];

    if t.offsite_required_for.contains(&d.tier) {
        let primary_region = config
            .repositories
            .get(&d.repository)
            .and_then(|r| r.region.clone());
        let best = facts
            .replicas
            .iter()
            .filter(|r| r.region.is_some() && r.region != primary_region)
            .max_by_key(|r| r.newest);
        let a = match best {
            None => aspect(
                "offsite",
                Verdict::Breached,
                "a copy in another region".into(),
                "none".into(),
                "no replica in another region is configured".into(),
            ),
            Some(r) => {
                let mut a = exposure(
                    "offsite",
                    &format!("off-site copy in '{}'", r.repository),
                    d,
                    t.rpo,
                    r.newest,
                    now,
                );
                if let (Some(p), Some(c)) = (facts.last_backup, r.newest) {
                    a.actual = format!("{}, {} behind the primary", a.actual, hours(p - c));
                }
                a
            }
        };
        aspects.push(a);
    }

    let rto_target = format!(
        "restore ≤ {}, tested every {}",
        std_h(t.rto),
        std_h(d.restore_test.every)
    );
    let every = chrono::Duration::from_std(d.restore_test.every).unwrap_or(chrono::Duration::MAX);
    let rto = match (&facts.last_restore_test, &facts.last_passed_restore_test) {
        (None, _) => aspect(
            "rto",
            Verdict::Breached,
            rto_target,
            "none".into(),
            "no restore test on record".into(),
        ),
        (Some(last), _) if !last.passed => aspect(
            "rto",
            Verdict::Breached,
            rto_target,
            format!("failed at {}", last.time.format("%Y-%m-%d %H:%M UTC")),
            format!(
                "the last restore test failed ({} open remediation items); the next run re-tests",
                facts.open_remediations
            ),
        ),
        (Some(_), None) => aspect(
            "rto",
            Verdict::Breached,
            rto_target,
            "never passed".into(),
            "no restore test has passed".into(),
        ),
        (Some(_), Some(pass)) => {
            let measured = Duration::from_secs_f64(pass.duration_s.max(0.0));
            let age = now - pass.time;
            let actual = format!("{:.1}s measured {} ago", pass.duration_s, hours(age));
            let interval = chrono::Duration::from_std(d.schedule.max_interval())
                .unwrap_or(chrono::Duration::zero());
            if measured > t.rto {
                aspect(
                    "rto",
                    Verdict::Breached,
                    rto_target,
                    actual,
                    format!(
                        "the measured restore took {:.0}s, over the RTO of {}",
                        pass.duration_s,
                        std_h(t.rto)
                    ),
                )
            } else if age > every {
                aspect(
                    "rto",
                    Verdict::Breached,
                    rto_target,
                    actual,
                    format!(
                        "the last passed restore test is {} old, overdue",
                        hours(age)
                    ),
                )
            } else if age + interval > every {
                aspect(
                    "rto",
                    Verdict::AtRisk,
                    rto_target,
                    actual,
                    "a restore test falls due before the next scheduled run".into(),
                )
            } else {
                aspect(
                    "rto",
                    Verdict::Met,
                    rto_target,
                    actual,
                    format!("restore test passed in {:.1}s", pass.duration_s),
                )
            }
        }
    };
    aspects.push(rto);

    let history = daily_history(d);
    let want = t.retention.approximate();
    let actual = match facts.oldest_backup {
        Some(o) => format!(
            "{} snapshots, oldest {} days",
            facts.snapshots,
            (now - o).num_days()
        ),
        None => "no snapshots".into(),
    };
    aspects.push(if history >= want {
        aspect(
            "retention",
            Verdict::Met,
            format!("≥ {}", t.retention),
            actual,
            format!(
                "the rules ({}) keep {} days of daily history",
                d.retention,
                history.as_secs() / 86_400
            ),
        )
    } else {
        aspect(
            "retention",
            Verdict::Breached,
            format!("≥ {}", t.retention),
            actual,
            format!("rules keep less than {} of daily history", t.retention),
        )
    });
    aspects.push(aspect(
        "encryption",
        Verdict::Met,
        "AES-256 at rest".into(),
        "AES-256-GCM".into(),
        "every stored object is AES-256-GCM encrypted".into(),
    ));

    // The first of the worst aspects speaks for the dataset: RPO before off-site before RTO.
    let verdict = aspects.iter().map(|a| a.verdict).max().expect("aspects");
    let worst = aspects
        .iter()
        .find(|a| a.verdict == verdict)
        .expect("aspects");
    DatasetStatus {
        dataset: d.name.clone(),
        tier: d.tier,
        verdict: worst.verdict,
        reason: if worst.verdict == Verdict::Met {
            "all commitments met".into()
        } else {
            format!("{}: {}", worst.name, worst.reason)
        },
        aspects,
    }
}

/// Recovery-point exposure over time: at each instant from `from` to `to` (every `step`), how
/// old the newest backup taken at or before it was, in seconds; `None` before the first backup.
/// `times` are backup times in any order. What a chart of RPO exposure draws, and what evidence
/// of the RPO over a period is made of.
pub fn exposure_series(
    times: &[DateTime<Utc>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: chrono::Duration,
) -> Vec<(DateTime<Utc>, Option<f64>)> {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    if step <= chrono::Duration::zero() {
        return out;
    }
    let mut t = from;
    let mut newest: Option<DateTime<Utc>> = None;
    let mut next = 0;
    while t <= to {
        while next < sorted.len() && sorted[next] <= t {
            newest = Some(sorted[next]);
            next += 1;
        }
        out.push((
            t,
            newest.map(|n| (t - n).num_milliseconds() as f64 / 1000.0),
        ));
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_projection_is_the_slowest_dataset_or_the_whole_at_the_parallelism() {
        assert_eq!(rto_projection(&[], 2), None);
        // 100 s and 50 s alone; two at a time: the slowest, 100 s.
        assert_eq!(rto_projection(&[(1000, 10.0), (500, 10.0)], 2), Some(100.0));
        // Four of 100 s, two at a time: 200 s.
        assert_eq!(rto_projection(&[(1000, 10.0); 4], 2), Some(200.0));
    }

    #[test]
    fn exposure_grows_between_backups_and_drops_at_each() {
        let t = |h: i64| {
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
        };
        let s = exposure_series(&[t(10), t(2)], t(0), t(12), chrono::Duration::hours(4));
        let ages: Vec<Option<f64>> = s.iter().map(|(_, a)| *a).collect();
        assert_eq!(
            ages,
            [
                None,
                Some(2.0 * 3600.0),
                Some(6.0 * 3600.0),
                Some(2.0 * 3600.0)
            ]
        );
        assert!(exposure_series(&[], t(0), t(1), chrono::Duration::zero()).is_empty());
    }

    #[test]
    fn physical_datasets_are_judged_by_their_newest_wal_segment() {
        let c = crate::config::Config::parse(
            "t",
            "[policy]\nrpo = \"15min\"\n[repositories.r]\nurl = \"/r\"\n[datasets.db]\nkind = \"postgres\"\n\
             method = \"physical\"\nsource = \"x\"\nschedule = \"daily at 02:00\"\n",
        )
        .unwrap();
        let d = &c.datasets["db"];
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let verdict = |wal_min: Option<i64>| {
            let facts = DatasetFacts {
                last_backup: Some(now - chrono::Duration::hours(10)),
                last_wal: wal_min.map(|m| now - chrono::Duration::minutes(m)),
                ..Default::default()
            };
            evaluate(&c, d, &facts, now).aspects[0].verdict
        };
        // A base backup 10 h old does not breach an RPO of 15 min: the WAL is what counts.
        assert_eq!(verdict(Some(2)), Verdict::Met);
        assert_eq!(verdict(Some(10)), Verdict::AtRisk);
        assert_eq!(verdict(Some(20)), Verdict::Breached);
        assert_eq!(verdict(None), Verdict::Breached);
    }
}

/// A disaster-recovery drill as a judgement needs it.
#[derive(Debug, Clone, Serialize)]
pub struct DrillFact {
    pub time: DateTime<Utc>,
    pub passed: bool,
    /// From the start of the drill to its last passing check.
    pub wall_s: f64,
}

/// Facts about the platform as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlatformFacts {
    pub last_drill: Option<DrillFact>,
    pub last_passed_drill: Option<DrillFact>,
    /// Projected time to restore every dataset at its current size (see [`rto_projection`]).
    pub rto_projection_s: Option<f64>,
}

/// How long restoring everything would take now: each dataset's current size over the
/// throughput its last restore measured, run `parallel` at a time. `None` when nothing was
/// measured. The platform's time is at least its slowest dataset's.
pub fn rto_projection(items: &[(u64, f64)], parallel: usize) -> Option<f64> {
    if items.is_empty() {
        return None;
    }
    let each: Vec<f64> = items
        .iter()
        .map(|&(size, rate)| {
            if rate > 0.0 {
                size as f64 / rate
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let longest = each.iter().copied().fold(0.0, f64::max);
    let total: f64 = each.iter().sum();
    Some(longest.max(total / parallel.max(1) as f64))
}

/// How long before it falls due a drill is judged at risk.
const DRILL_NOTICE: Duration = Duration::from_secs(14 * 86_400);

/// The platform's own commitments: the yearly disaster-recovery drill, and whether a restore of
/// everything at its current size still fits the RTO.
pub fn evaluate_platform(config: &Config, f: &PlatformFacts, now: DateTime<Utc>) -> Vec<Aspect> {
    let t = &config.targets;
    let target = format!(
        "a drill every {}, within RTO {}",
        std_h(t.drill_every),
        std_h(t.rto)
    );
    let every = chrono::Duration::from_std(t.drill_every).unwrap_or(chrono::Duration::MAX);
    let drill = match (&f.last_drill, &f.last_passed_drill) {
        (None, _) => aspect(
            "drill",
            Verdict::Breached,
            target,
            "none".into(),
            "no disaster-recovery drill on record".into(),
        ),
        (Some(last), _) if !last.passed => aspect(
            "drill",
            Verdict::Breached,
            target,
            format!("failed at {}", last.time.format("%Y-%m-%d %H:%M UTC")),
            "the last drill failed; every run drills again until one passes".into(),
        ),
        (Some(_), None) => aspect(
            "drill",
            Verdict::Breached,
            target,
            "never passed".into(),
            "no drill has passed".into(),
        ),
        (Some(_), Some(pass)) => {
            let due = pass.time + every;
            let actual = format!(
                "passed {}, restored in {}",
                pass.time.format("%Y-%m-%d"),
                std_h(Duration::from_secs_f64(pass.wall_s.max(0.0)))
            );
            if pass.wall_s > t.rto.as_secs_f64() {
                aspect(
                    "drill",
                    Verdict::Breached,
                    target,
                    actual,
                    format!(
                        "the drill took {}, over the RTO of {}",
                        std_h(Duration::from_secs_f64(pass.wall_s)),
                        std_h(t.rto)
                    ),
                )
            } else if now >= due {
                aspect(
                    "drill",
                    Verdict::Breached,
                    target,
                    actual,
                    format!("the next drill was due {}", due.format("%Y-%m-%d")),
                )
            } else if due - now <= chrono::Duration::from_std(DRILL_NOTICE).unwrap_or_default() {
                aspect(
                    "drill",
                    Verdict::AtRisk,
                    target,
                    actual,
                    format!("the next drill is due {}", due.format("%Y-%m-%d")),
                )
            } else {
                aspect(
                    "drill",
                    Verdict::Met,
                    target,
                    actual,
                    format!("next drill due {}", due.format("%Y-%m-%d")),
                )
            }
        }
    };
    let target = format!("restore of everything ≤ {}", std_h(t.rto));
    let projection = match f.rto_projection_s {
        None => aspect(
            "rto_projection",
            Verdict::AtRisk,
            target,
            "not measured".into(),
            "no restore test or drill has measured a throughput yet".into(),
        ),
        Some(s) if s > t.rto.as_secs_f64() => aspect(
            "rto_projection",
            Verdict::AtRisk,
            target,
            format!("{} projected", std_h(Duration::from_secs_f64(s.min(1e12)))),
            format!(
                "at the measured throughput, restoring every dataset at its current size takes {}, over the RTO of {}",
                std_h(Duration::from_secs_f64(s.min(1e12))),
                std_h(t.rto)
            ),
        ),
        Some(s) => aspect(
            "rto_projection",
            Verdict::Met,
            target,
            format!("{} projected", std_h(Duration::from_secs_f64(s))),
            "every dataset at its current size restores within the RTO at the measured throughput"
                .into(),
        ),
    };
    vec![drill, projection]
}
