//! A year of daily snapshots (365 days ending 2026-11-27, one per day at
//! 02:00 +00:00) reduced by `within 30d` + `monthly 12`.
//!
//! The within boundary follows restic exactly: a snapshot is kept when its
//! time is strictly after `newest - 30d` (Go's `cur.Time.After(t)` in
//! `ApplyPolicy`). Newest is 2026-11-27T02:00, so the cutoff is
//! 2026-10-28T02:00: the snapshot taken exactly at the cutoff is removed and
//! exactly 30 daily snapshots (2026-10-29 ..= 2026-11-27) are kept by the
//! within rule. (An inclusive `>=` comparison would keep 31.)

use std::collections::BTreeMap;

use bulwark_policy::{CalendarDuration, Candidate, KeepRules, WithinReference, plan};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

fn history() -> Vec<(NaiveDate, Candidate)> {
    let last = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let offset = chrono::FixedOffset::east_opt(0).unwrap();
    (0..365)
        .map(|back| {
            let date = last - Duration::days(back);
            let time = offset
                .from_local_datetime(&date.and_hms_opt(2, 0, 0).unwrap())
                .unwrap();
            (date, Candidate::new(format!("snap-{date}"), time))
        })
        .collect()
}

#[test]
fn a_year_of_dailies_reduced_by_within_30d_and_monthly_12() {
    let history = history();
    assert_eq!(history.len(), 365);
    let newest = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    assert_eq!(
        history.last().unwrap().0,
        NaiveDate::from_ymd_opt(2025, 11, 28).unwrap()
    );

    // Expected, by hand logic independent of the planner:
    // * within 30d: dates strictly after newest - 30 days (same time of day).
    // * monthly 12: walking back from the newest, the first snapshot seen in
    //   each month is the last day of that month present in the history;
    //   the 12 newest months are 2026-11 back to 2025-12.
    let within_from = newest - Duration::days(30); // 2026-10-28, excluded
    let month_index = |d: NaiveDate| {
        (newest.year() * 12 + newest.month0() as i32) - (d.year() * 12 + d.month0() as i32)
    };
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (date, c) in &history {
        let mut reasons = Vec::new();
        if *date > within_from {
            reasons.push("within 30d".to_string());
        }
        let newest_in_month =
            *date == newest || (*date + Duration::days(1)).month() != date.month();
        if newest_in_month && month_index(*date) < 12 {
            reasons.push(format!("monthly snapshot {}", date.format("%Y-%m")));
        }
        if !reasons.is_empty() {
            expected.insert(c.id.clone(), reasons);
        }
    }
    // 30 within + 12 month ends, two of which (11-27, 10-31) are also within.
    assert_eq!(expected.len(), 40);

    let rules = KeepRules {
        within: Some(CalendarDuration::parse("30d").unwrap()),
        monthly: Some(12),
        ..Default::default()
    };
    // Shuffle-ish input order (oldest first) to show order does not matter.
    let candidates: Vec<Candidate> = history.iter().rev().map(|(_, c)| c.clone()).collect();
    let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
    let decisions = plan(&rules, &candidates, now, WithinReference::Newest).unwrap();

    assert_eq!(decisions.len(), 365);
    for (d, c) in decisions.iter().zip(&candidates) {
        assert_eq!(d.id, c.id, "decisions come in input order");
    }
    let actual: BTreeMap<String, Vec<String>> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.id.clone(), d.reasons.clone()))
        .collect();
    assert_eq!(actual, expected);

    // Spot checks of the boundaries.
    let reasons = |id: &str| actual.get(id).cloned().unwrap_or_default();
    assert!(
        reasons("snap-2026-10-28").is_empty(),
        "exactly 30d before newest: removed"
    );
    assert_eq!(reasons("snap-2026-10-29"), ["within 30d"]);
    assert_eq!(
        reasons("snap-2026-10-31"),
        ["within 30d", "monthly snapshot 2026-10"]
    );
    assert_eq!(
        reasons("snap-2026-11-27"),
        ["within 30d", "monthly snapshot 2026-11"]
    );
    assert_eq!(reasons("snap-2026-02-28"), ["monthly snapshot 2026-02"]);
    assert_eq!(reasons("snap-2025-12-31"), ["monthly snapshot 2025-12"]);
    assert!(
        reasons("snap-2025-11-30").is_empty(),
        "13th month: count exhausted"
    );
    assert!(
        reasons("snap-2025-11-28").is_empty(),
        "oldest is not kept once the count is used up"
    );
    let within_count = actual
        .values()
        .filter(|r| r.contains(&"within 30d".to_string()))
        .count();
    assert_eq!(within_count, 30);
}

#[test]
fn the_same_year_measured_from_now() {
    // Evaluated 10 days after the last backup with WithinReference::Now, the
    // window shrinks to 20 snapshots; the monthly keeps are unchanged.
    let candidates: Vec<Candidate> = history().into_iter().map(|(_, c)| c).collect();
    let rules = KeepRules {
        within: Some(CalendarDuration::days(30)),
        monthly: Some(12),
        ..Default::default()
    };
    let now: DateTime<Utc> = "2026-12-07T02:00:00Z".parse().unwrap();
    let decisions = plan(&rules, &candidates, now, WithinReference::Now).unwrap();
    let within = decisions
        .iter()
        .filter(|d| d.reasons.iter().any(|r| r == "within 30d"))
        .count();
    assert_eq!(within, 20); // 2026-11-08 ..= 2026-11-27
    let monthly = decisions
        .iter()
        .filter(|d| d.reasons.iter().any(|r| r.starts_with("monthly")))
        .count();
    assert_eq!(monthly, 12);
    // Newest (restic's default) is unaffected by the clock.
    let by_newest = plan(&rules, &candidates, now, WithinReference::Newest).unwrap();
    assert_eq!(by_newest.iter().filter(|d| d.keep).count(), 40);
}
