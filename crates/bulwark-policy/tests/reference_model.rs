//! Property tests: `plan` against a deliberately simple, independently
//! written model of restic's forget policy, plus invariants.
//!
//! The model shares nothing with the implementation but the public types:
//! it ranks snapshots by counting (O(n^2)) instead of sorting, identifies
//! calendar buckets by formatted labels instead of integers, decides each
//! counted rule per position by counting earlier bucket changes instead of
//! running a state machine, and computes the `within` cutoff with civil-day
//! arithmetic instead of chrono's date types.

use bulwark_policy::{
    CalendarDuration, Candidate, Decision, Hold, KeepRules, PlanError, UNLIMITED, WithinReference,
    plan,
};
use chrono::{DateTime, Duration, FixedOffset, TimeZone, Timelike, Utc};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// Seconds and nanoseconds since the epoch: a total order on instants.
fn instant(t: &DateTime<FixedOffset>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`). `month` is 1..=12, `day` may be any value
/// (it is simply added), which is exactly Go's normalisation.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Go's `t.AddDate(-y, -m, -d).Add(-h hours)` as an instant.
fn go_cutoff(t: &DateTime<FixedOffset>, d: &CalendarDuration) -> (i64, u32) {
    let local = t.naive_local();
    let text = local.format("%Y %m %d").to_string();
    let parts: Vec<i64> = text.split(' ').map(|p| p.parse().unwrap()).collect();
    let (year, month, day) = (parts[0], parts[1], parts[2]);
    let months = year * 12 + (month - 1) - i64::from(d.months) - 12 * i64::from(d.years);
    let (new_year, new_month) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    let days = days_from_civil(new_year, new_month, day - i64::from(d.days));
    let local_secs = days * 86_400 + i64::from(local.num_seconds_from_midnight());
    let utc_secs = local_secs - i64::from(t.offset().local_minus_utc()) - 3600 * i64::from(d.hours);
    (utc_secs, t.timestamp_subsec_nanos())
}

fn hold_text(hold: &Hold, now: DateTime<Utc>) -> Option<String> {
    match hold {
        Hold::Indefinite => Some("hold (no expiry)".into()),
        Hold::Until(until) if now < *until => {
            if until.num_seconds_from_midnight() == 0 && until.nanosecond() == 0 {
                Some(format!("hold until {}", until.format("%Y-%m-%d")))
            } else {
                Some(format!("hold until {}", until.format("%Y-%m-%dT%H:%M:%SZ")))
            }
        }
        Hold::Until(_) => None,
    }
}

fn count_text(n: u32) -> String {
    if n == UNLIMITED {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn reference(
    rules: &KeepRules,
    snaps: &[Candidate],
    now: DateTime<Utc>,
    reference: WithinReference,
) -> Result<Vec<Decision>, PlanError> {
    let counted = [
        ("last", rules.last, ""),
        ("hourly", rules.hourly, "%Y-%m-%dT%H"),
        ("daily", rules.daily, "%Y-%m-%d"),
        ("weekly", rules.weekly, "%G-W%V"),
        ("monthly", rules.monthly, "%Y-%m"),
        ("yearly", rules.yearly, "%Y"),
    ];
    let within = rules.within.filter(|d| *d != CalendarDuration::ZERO);
    let any_count = counted
        .iter()
        .any(|(_, n, _)| matches!(n, Some(n) if *n > 0));
    if !any_count && within.is_none() && rules.tags.is_empty() {
        return Err(PlanError::EmptyPolicy);
    }
    let n = snaps.len();

    // rank 0 = newest; equal instants rank in input order.
    let rank: Vec<usize> = (0..n)
        .map(|i| {
            let me = instant(&snaps[i].time);
            (0..n)
                .filter(|&j| {
                    let other = instant(&snaps[j].time);
                    other > me || (other == me && j < i)
                })
                .count()
        })
        .collect();
    let mut at_rank = vec![0; n];
    for i in 0..n {
        at_rank[rank[i]] = i;
    }

    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
    for i in 0..n {
        if let Some(text) = snaps[i].hold.as_ref().and_then(|h| hold_text(h, now)) {
            reasons[i].push(text);
        }
    }

    for i in 0..n {
        for entry in &rules.tags {
            let wanted: Vec<&str> = entry
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect();
            let (hit, label) = if wanted.is_empty() {
                (snaps[i].tags.is_empty(), "(untagged)".to_string())
            } else {
                (
                    wanted.iter().all(|w| snaps[i].tags.iter().any(|t| t == w)),
                    wanted.join(","),
                )
            };
            if hit {
                reasons[i].push(format!("tag {label}"));
            }
        }
    }

    if let Some(d) = within {
        let reference_time = match reference {
            WithinReference::Newest => (0..n)
                .filter(|&i| snaps[i].time.with_timezone(&Utc) < now)
                .min_by_key(|&i| rank[i])
                .map(|i| snaps[i].time),
            WithinReference::Now => Some(now.fixed_offset()),
        };
        for i in 0..n {
            let inside = match &reference_time {
                None => true,
                Some(r) => instant(&snaps[i].time) > go_cutoff(r, &d),
            };
            if inside {
                reasons[i].push(format!("within {d}"));
            }
        }
    }

    for (name, count, format) in counted {
        let Some(count) = count.filter(|c| *c > 0) else {
            continue;
        };
        let label = |pos: usize| -> String {
            if name == "last" {
                pos.to_string()
            } else {
                snaps[at_rank[pos]]
                    .time
                    .naive_local()
                    .format(format)
                    .to_string()
            }
        };
        let starts = |pos: usize| pos == 0 || label(pos) != label(pos - 1);
        for pos in 0..n {
            let used_before = (0..pos).filter(|&q| starts(q)).count();
            let counts_left = (used_before as u64) < u64::from(count);
            if counts_left && (starts(pos) || pos == n - 1) {
                let prefix = if starts(pos) { "" } else { "oldest " };
                let text = if name == "last" {
                    format!("{prefix}last {}", count_text(count))
                } else {
                    format!("{prefix}{name} snapshot {}", label(pos))
                };
                reasons[at_rank[pos]].push(text);
            }
        }
    }

    if n > 0 && reasons.iter().all(|r| r.is_empty()) {
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

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum HoldSpec {
    None,
    Indefinite,
    /// Relative to `now`, either at a midnight or at an arbitrary second.
    Until {
        days: i64,
        second: Option<i64>,
    },
    /// Exactly at, or one second around, `now` (the expiry boundary).
    AroundNow(i64),
}

#[derive(Debug, Clone)]
struct Case {
    snaps: Vec<Candidate>,
    now: DateTime<Utc>,
    rules: KeepRules,
    reference: WithinReference,
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn arb_offset() -> impl Strategy<Value = FixedOffset> {
    prop_oneof![
        Just(-10 * HOUR),
        Just(-5 * HOUR),
        Just(0),
        Just(5 * HOUR + 1800),
        Just(9 * HOUR),
        Just(14 * HOUR),
    ]
    .prop_map(|secs| FixedOffset::east_opt(secs as i32).unwrap())
}

fn arb_hold() -> impl Strategy<Value = HoldSpec> {
    prop_oneof![
        8 => Just(HoldSpec::None),
        1 => Just(HoldSpec::Indefinite),
        2 => (-5i64..5, prop::option::of(0i64..DAY)).prop_map(|(days, second)| HoldSpec::Until { days, second }),
        1 => (-1i64..=1).prop_map(HoldSpec::AroundNow),
    ]
}

fn arb_count() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(0)),
        4 => (1u32..6).prop_map(Some),
        1 => Just(Some(UNLIMITED)),
    ]
}

fn arb_within() -> impl Strategy<Value = Option<CalendarDuration>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(CalendarDuration::ZERO)),
        2 => (0u32..45, prop_oneof![Just(0u32), 0u32..50])
            .prop_map(|(days, hours)| Some(CalendarDuration { years: 0, months: 0, days, hours })),
        2 => (0u32..3, 0u32..14, 0u32..31, 0u32..24)
            .prop_map(|(years, months, days, hours)| Some(CalendarDuration { years, months, days, hours })),
    ]
}

fn arb_rules() -> impl Strategy<Value = KeepRules> {
    let tag_pool = ["nightly", "manual,weekly", "", "absent", " weekly "];
    (
        arb_within(),
        [
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
        ],
        prop::sample::subsequence(tag_pool.to_vec(), 0..=2),
    )
        .prop_map(|(within, c, tags)| KeepRules {
            within,
            last: c[0],
            hourly: c[1],
            daily: c[2],
            weekly: c[3],
            monthly: c[4],
            yearly: c[5],
            tags: tags.into_iter().map(String::from).collect(),
        })
}

fn arb_case() -> impl Strategy<Value = Case> {
    let span = prop_oneof![
        Just(3 * DAY),
        Just(40 * DAY),
        Just(120 * DAY),
        Just(4 * 365 * DAY)
    ];
    let snapshot = (
        0i64..1_000_000,
        arb_offset(),
        prop::bits::u8::between(0, 3),
        arb_hold(),
        prop::bool::weighted(0.15),
    );
    // Whole hours or days make exact `within` boundaries and same-bucket
    // ties likely; arbitrary seconds cover the rest.
    let grain = prop_oneof![Just(1i64), Just(HOUR), Just(DAY)];
    (
        (span, grain),
        prop::collection::vec(snapshot, 0..40),
        -10 * DAY..60 * DAY,
        arb_rules(),
        prop_oneof![Just(WithinReference::Newest), Just(WithinReference::Now)],
    )
        .prop_map(|((span, grain), raw, now_shift, rules, reference)| {
            // Starts just before a year end so ISO week years get exercised.
            let base = Utc.with_ymd_and_hms(2023, 12, 20, 0, 0, 0).unwrap();
            let now = base + Duration::seconds(span + now_shift);
            let tag_names = ["nightly", "weekly", "manual"];
            let mut snaps: Vec<Candidate> = Vec::with_capacity(raw.len());
            for (i, (frac, offset, tag_bits, hold, duplicate)) in raw.into_iter().enumerate() {
                let utc = match snaps.last() {
                    Some(prev) if duplicate => prev.time.with_timezone(&Utc),
                    _ => base + Duration::seconds(span * frac / 1_000_000 / grain * grain),
                };
                let tags = (0..3)
                    .filter(|b| tag_bits & (1 << b) != 0)
                    .map(|b| tag_names[b]);
                let hold = match hold {
                    HoldSpec::None => None,
                    HoldSpec::Indefinite => Some(Hold::Indefinite),
                    HoldSpec::Until { days, second } => {
                        let midnight = (now + Duration::days(days))
                            .date_naive()
                            .and_hms_opt(0, 0, 0)
                            .unwrap()
                            .and_utc();
                        Some(Hold::Until(
                            midnight + Duration::seconds(second.unwrap_or(0)),
                        ))
                    }
                    HoldSpec::AroundNow(delta) => Some(Hold::Until(now + Duration::seconds(delta))),
                };
                let mut c =
                    Candidate::new(format!("s{i}"), utc.with_timezone(&offset)).with_tags(tags);
                c.hold = hold;
                snaps.push(c);
            }
            Case {
                snaps,
                now,
                rules,
                reference,
            }
        })
}

fn run(case: &Case, rules: &KeepRules, snaps: &[Candidate]) -> Result<Vec<Decision>, PlanError> {
    plan(rules, snaps, case.now, case.reference)
}

fn kept_ids(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

fn with_count(
    rules: &KeepRules,
    field: usize,
    f: impl Fn(Option<u32>) -> Option<u32>,
) -> KeepRules {
    let mut r = rules.clone();
    let slot = match field {
        0 => &mut r.last,
        1 => &mut r.hourly,
        2 => &mut r.daily,
        3 => &mut r.weekly,
        4 => &mut r.monthly,
        _ => &mut r.yearly,
    };
    *slot = f(*slot);
    r
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plan_matches_the_reference_model(case in arb_case()) {
        let expected = reference(&case.rules, &case.snaps, case.now, case.reference);
        let actual = run(&case, &case.rules, &case.snaps);
        prop_assert_eq!(actual, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kept_exactly_when_there_are_reasons_and_in_input_order(case in arb_case()) {
        match run(&case, &case.rules, &case.snaps) {
            Ok(decisions) => {
                prop_assert_eq!(decisions.len(), case.snaps.len());
                for (d, s) in decisions.iter().zip(&case.snaps) {
                    prop_assert_eq!(&d.id, &s.id);
                    prop_assert_eq!(d.keep, !d.reasons.is_empty());
                }
                prop_assert!(case.snaps.is_empty() || decisions.iter().any(|d| d.keep));
            }
            Err(PlanError::EmptyPolicy) => prop_assert!(case.rules.is_empty()),
            Err(PlanError::WouldRemoveAll { count }) => {
                prop_assert_eq!(count, case.snaps.len());
                prop_assert!(count > 0);
            }
        }
    }

    #[test]
    fn held_snapshots_are_always_kept(case in arb_case()) {
        let any_active = case.snaps.iter().any(|s| s.active_hold(case.now).is_some());
        match run(&case, &case.rules, &case.snaps) {
            Ok(decisions) => {
                for (d, s) in decisions.iter().zip(&case.snaps) {
                    if let Some(hold) = s.active_hold(case.now) {
                        prop_assert!(d.keep);
                        prop_assert_eq!(&d.reasons[0], &hold.reason());
                    } else {
                        prop_assert!(d.reasons.iter().all(|r| !r.starts_with("hold")));
                    }
                }
            }
            Err(PlanError::WouldRemoveAll { .. }) => prop_assert!(!any_active),
            Err(PlanError::EmptyPolicy) => prop_assert!(case.rules.is_empty()),
        }
    }

    #[test]
    fn holds_only_add_reasons(case in arb_case()) {
        // Removing every hold changes nothing but the hold reasons.
        let unheld: Vec<Candidate> = case.snaps.iter().cloned().map(|mut s| { s.hold = None; s }).collect();
        if let Ok(without) = run(&case, &case.rules, &unheld) {
            let with = run(&case, &case.rules, &case.snaps).unwrap();
            for ((w, wo), s) in with.iter().zip(&without).zip(&case.snaps) {
                let mut expected: Vec<String> = s.active_hold(case.now).map(|h| h.reason()).into_iter().collect();
                expected.extend(wo.reasons.iter().cloned());
                prop_assert_eq!(&w.reasons, &expected);
            }
        }
    }

    #[test]
    fn raising_a_count_never_removes_more(case in arb_case(), field in 0usize..6, extra in 1u32..5) {
        if let Ok(before) = run(&case, &case.rules, &case.snaps) {
            let raised = with_count(&case.rules, field, |c| Some(c.unwrap_or(0).saturating_add(extra)));
            let after = run(&case, &raised, &case.snaps);
            prop_assert!(after.is_ok());
            let after = after.unwrap();
            for (b, a) in before.iter().zip(&after) {
                prop_assert!(!b.keep || a.keep, "{} was kept before raising count #{}", b.id, field);
            }
            // And unlimited keeps at least as much as any finite count.
            let unlimited = with_count(&case.rules, field, |_| Some(UNLIMITED));
            let all = run(&case, &unlimited, &case.snaps).unwrap();
            for (a, u) in after.iter().zip(&all) {
                prop_assert!(!a.keep || u.keep);
            }
        }
    }

    #[test]
    fn lengthening_within_never_removes_more(case in arb_case(), extra_days in 1u32..40, extra_hours in 0u32..30) {
        if let Ok(before) = run(&case, &case.rules, &case.snaps) {
            let mut longer = case.rules.clone();
            let mut d = longer.within.unwrap_or(CalendarDuration::ZERO);
            d.days += extra_days;
            d.hours += extra_hours;
            longer.within = Some(d);
            let after = run(&case, &longer, &case.snaps).unwrap();
            for (b, a) in before.iter().zip(&after) {
                prop_assert!(!b.keep || a.keep);
            }
        }
    }

    #[test]
    fn input_order_does_not_matter_for_distinct_instants(
        case in arb_case(),
        seed in prop::collection::vec(any::<u32>(), 40),
    ) {
        // Keep the first snapshot of each instant: ties are the one place
        // where input order is meaningful.
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<Candidate> =
            case.snaps.iter().filter(|s| seen.insert(instant(&s.time))).cloned().collect();
        let mut shuffled: Vec<(u32, Candidate)> =
            distinct.iter().cloned().enumerate().map(|(i, s)| (seed[i], s)).collect();
        shuffled.sort_by_key(|(k, _)| *k);
        let shuffled: Vec<Candidate> = shuffled.into_iter().map(|(_, s)| s).collect();
        let a = run(&case, &case.rules, &distinct);
        let b = run(&case, &case.rules, &shuffled);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let mut a: Vec<Decision> = a;
                let mut b: Vec<Decision> = b;
                a.sort_by(|x, y| x.id.cmp(&y.id));
                b.sort_by(|x, y| x.id.cmp(&y.id));
                prop_assert_eq!(a, b);
            }
            (a, b) => prop_assert_eq!(a.err(), b.err()),
        }
    }
}

// ---------------------------------------------------------------------------
// The model itself, checked on known values
// ---------------------------------------------------------------------------

#[test]
fn reference_helpers_are_sane() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    // Day overflow rolls into the next month, like Go.
    assert_eq!(days_from_civil(2026, 2, 31), days_from_civil(2026, 3, 3));
    assert_eq!(days_from_civil(2026, 3, 0), days_from_civil(2026, 2, 28));
    let t = DateTime::parse_from_rfc3339("2026-03-31T12:00:00+02:00").unwrap();
    let month = CalendarDuration {
        years: 0,
        months: 1,
        days: 0,
        hours: 0,
    };
    let expected = DateTime::parse_from_rfc3339("2026-03-03T12:00:00+02:00").unwrap();
    assert_eq!(go_cutoff(&t, &month), instant(&expected));
    let kept = reference(
        &KeepRules {
            daily: Some(1),
            ..Default::default()
        },
        &[Candidate::new("a", t), Candidate::new("b", expected)],
        Utc::now(),
        WithinReference::Newest,
    )
    .unwrap();
    assert_eq!(kept_ids(&kept), ["a"]);
}
