//! The two measurements most commitments reduce to, computed exactly over a period (not sampled):
//!
//! - exposure: how old the newest recovery point available at each instant was (the RPO, and the
//!   off-site copy's exposure), its maximum, and the windows where it exceeded a limit;
//! - coverage: the longest stretch without a passing test (restore tests, drills) against the
//!   interval they are promised at.
//!
//! Pure functions of times; the sections gather the times from the ledger.

use chrono::{DateTime, Duration, Utc};

use super::model::{ChartPoint, Finding};

/// A recovery point that became available: at `arrival` (a backup's or copy's end), data as of
/// `point` (the snapshot's time) could be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrival {
    pub arrival: DateTime<Utc>,
    pub point: DateTime<Utc>,
}

/// Exposure over a period.
#[derive(Debug, Clone)]
pub struct Exposure {
    /// The worst exposure, and the instant it was reached.
    pub max_s: f64,
    pub max_at: DateTime<Utc>,
    /// Stretches where the exposure exceeded the limit: from when it crossed to when a new
    /// recovery point (or the period's end) brought it back.
    pub over: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whether any recovery point existed by the period's end.
    pub any: bool,
    /// The exposure's sawtooth, exact at every recovery point (thinned for charts when long).
    pub points: Vec<ChartPoint>,
}

fn secs(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// At most this many chart points; longer histories keep each stretch's peak.
const MAX_POINTS: usize = 1200;

/// The exposure over `[from, to]` to recovery points that arrive as `arrivals` say (in any order,
/// including ones before the period). Before the first recovery point the exposure counts from
/// `from`: a dataset new in the period is judged from the period's start.
pub fn exposure(
    arrivals: &[Arrival],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Duration,
) -> Exposure {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut i = 0;
    while i < sorted.len() && sorted[i].arrival <= from {
        newest = Some(newest.map_or(sorted[i].point, |n| n.max(sorted[i].point)));
        i += 1;
    }
    let mut base = newest.unwrap_or(from);
    let any = newest.is_some() || sorted[i..].iter().any(|a| a.arrival <= to);
    let mut out = Exposure {
        max_s: secs(from - base),
        max_at: from,
        over: Vec::new(),
        any,
        points: vec![ChartPoint {
            time: from,
            value_s: Some(secs(from - base)),
            ok: None,
        }],
    };
    let reach = |base: DateTime<Utc>, until: DateTime<Utc>, out: &mut Exposure| {
        let age = secs(until - base);
        if age > out.max_s {
            out.max_s = age;
            out.max_at = until;
        }
        let crossed = (base + limit).max(from);
        if until - base > limit && crossed < until {
            out.over.push((crossed, until));
        }
        out.points.push(ChartPoint {
            time: until,
            value_s: Some(age),
            ok: None,
        });
    };
    for a in sorted[i..].iter().filter(|a| a.arrival <= to) {
        if a.point <= base {
            continue;
        }
        reach(base, a.arrival, &mut out);
        base = a.point;
        out.points.push(ChartPoint {
            time: a.arrival,
            value_s: Some(secs(a.arrival - base).max(0.0)),
            ok: None,
        });
    }
    reach(base, to, &mut out);
    out.points = thin(std::mem::take(&mut out.points));
    out
}

/// Keeps a chart readable: beyond [`MAX_POINTS`], each bucket keeps its highest point.
fn thin(points: Vec<ChartPoint>) -> Vec<ChartPoint> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    points
        .chunks(per)
        .flat_map(|c| {
            let low = c
                .iter()
                .min_by(|a, b| a.value_s.partial_cmp(&b.value_s).expect("finite"))
                .cloned();
            let high = c
                .iter()
                .max_by(|a, b| a.value_s.partial_cmp(&b.value_s).expect("finite"))
                .cloned();
            let mut two: Vec<ChartPoint> = low.into_iter().chain(high).collect();
            two.sort_by_key(|p| p.time);
            two
        })
        .collect()
}

/// Coverage of an interval commitment over a period.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub finding: Finding,
    /// The longest stretch without a pass, and where it ended.
    pub longest_s: f64,
    pub longest_until: DateTime<Utc>,
    pub passes_in_period: usize,
    pub last_pass: Option<DateTime<Utc>>,
    pub reason: String,
}

/// Whether something promised every `every` (a passing restore test, a drill) happened often
/// enough over `[from, to]`. Work runs at scheduled runs only, and falls due when `every` has
/// passed, so a stretch is late only beyond `every + grace` (the run's schedule interval and the
/// time a job takes). `passes` are the times of every pass up to `to`, in any order. A
/// stretch counts from the last pass before the period (or from its start when there is none)
/// to each pass, and from the last pass to the period's end. `what` names it in the reason.
pub fn coverage(
    passes: &[DateTime<Utc>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    every: Duration,
    grace: Duration,
    what: &str,
) -> Coverage {
    let mut sorted: Vec<DateTime<Utc>> = passes.iter().copied().filter(|t| *t <= to).collect();
    sorted.sort();
    let prior = sorted.iter().rev().find(|t| **t < from).copied();
    let inside: Vec<DateTime<Utc>> = sorted.iter().copied().filter(|t| *t >= from).collect();
    let last_pass = sorted.last().copied();
    let mut cursor = prior.unwrap_or(from);
    let (mut longest, mut until) = (Duration::zero(), from);
    for t in inside.iter().copied().chain(std::iter::once(to)) {
        if t - cursor > longest {
            longest = t - cursor;
            until = t;
        }
        cursor = cursor.max(t);
    }
    let human = |d: Duration| bulwark_policy::human(d.to_std().unwrap_or_default());
    let (finding, reason) = if last_pass.is_none() {
        (Finding::Breached, format!("no passing {what} on record"))
    } else if longest > every + grace {
        (
            Finding::Breached,
            format!(
                "{} without a passing {what} (until {}), longer than the {} promised",
                human(longest),
                until.format("%Y-%m-%d"),
                human(every)
            ),
        )
    } else {
        (
            Finding::Met,
            format!(
                "{} passing {what}s in the period; never more than {} without one (every {} promised)",
                inside.len(),
                human(longest),
                human(every)
            ),
        )
    };
    Coverage {
        finding,
        longest_s: secs(longest),
        longest_until: until,
        passes_in_period: inside.len(),
        last_pass,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn at(h: i64) -> Arrival {
        Arrival {
            arrival: t(h) + Duration::minutes(5),
            point: t(h),
        }
    }

    #[test]
    fn exposure_is_exact_at_each_backup_and_names_the_stretches_over_the_limit() {
        // A backup before the period, then at 20 h and 60 h; the period is 0 to 72 h.
        let e = exposure(&[at(60), at(-2), at(20)], t(0), t(72), Duration::hours(24));
        assert!(e.any);
        // Worst: just before the 60 h backup arrived, 40 h 5 min after the 20 h point.
        assert_eq!(e.max_s, (40.0 * 60.0 + 5.0) * 60.0);
        assert_eq!(e.max_at, t(60) + Duration::minutes(5));
        assert_eq!(e.over, vec![(t(44), t(60) + Duration::minutes(5))]);
        assert_eq!(e.points.first().unwrap().value_s, Some(2.0 * 3600.0));
        // Nothing ever: the exposure counts from the period's start and says none arrived.
        let none = exposure(&[], t(0), t(10), Duration::hours(24));
        assert!(!none.any);
        assert_eq!(none.max_s, 10.0 * 3600.0);
        assert!(none.over.is_empty());
        // An older point arriving late changes nothing.
        let late = exposure(
            &[
                at(2),
                Arrival {
                    arrival: t(5),
                    point: t(1),
                },
            ],
            t(0),
            t(6),
            Duration::hours(24),
        );
        assert_eq!(late.max_s, 4.0 * 3600.0);
    }

    #[test]
    fn long_histories_keep_their_peaks() {
        let arrivals: Vec<Arrival> = (0..5000).map(|h| at(h * 2)).collect();
        let mut with_gap = arrivals.clone();
        with_gap.retain(|a| a.point < t(4000) || a.point > t(4100));
        let e = exposure(&with_gap, t(0), t(10_000), Duration::hours(24));
        assert!(e.points.len() <= MAX_POINTS + 2);
        let peak = e
            .points
            .iter()
            .filter_map(|p| p.value_s)
            .fold(0.0, f64::max);
        assert_eq!(peak, e.max_s);
        assert!(e.max_s > 100.0 * 3600.0);
    }

    #[test]
    fn coverage_counts_from_the_last_pass_before_the_period() {
        let every = Duration::hours(100);
        let none = Duration::zero();
        let c = coverage(&[t(-50), t(40), t(130)], t(0), t(200), every, none, "drill");
        assert_eq!(c.finding, Finding::Met, "{}", c.reason);
        assert_eq!(c.passes_in_period, 2);
        assert_eq!(c.longest_s, 90.0 * 3600.0);
        let late = coverage(&[t(-50), t(80)], t(0), t(150), every, none, "drill");
        // Within the grace of a schedule that runs every 40 hours, the same stretch is on time.
        let graced = coverage(
            &[t(-50), t(80)],
            t(0),
            t(150),
            every,
            Duration::hours(40),
            "drill",
        );
        assert_eq!(graced.finding, Finding::Met, "{}", graced.reason);
        assert_eq!(late.finding, Finding::Breached);
        assert_eq!(late.longest_until, t(80));
        assert!(
            late.reason.contains("without a passing drill"),
            "{}",
            late.reason
        );
        let never = coverage(&[], t(0), t(10), every, none, "drill");
        assert_eq!(never.finding, Finding::Breached);
        assert!(never.reason.contains("no passing drill"));
        // A pass after the period's end does not count.
        let after = coverage(&[t(300)], t(0), t(10), every, none, "drill");
        assert_eq!(after.finding, Finding::Breached);
    }
}
