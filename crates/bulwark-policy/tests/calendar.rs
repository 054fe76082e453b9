//! Business-day arithmetic, exhaustively: every day of four decades against an independent
//! closed form for weekends, holiday lists checked against the published dates, year ends,
//! resolutions late on a Friday, and time zones (a Thursday evening in New York is a Friday in
//! UTC; a midnight that a time-zone change skips).

use bulwark_policy::calendar::{Calendar, Country, easter};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn cal(tz: Tz, countries: &[Country]) -> Calendar {
    Calendar {
        time_zone: tz,
        countries: countries.to_vec(),
        ..Calendar::default()
    }
}

fn at(tz: Tz, d: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_hms_opt(h, m, 0).unwrap())
        .earliest()
        .unwrap()
        .to_utc()
}

fn days(start: NaiveDate, end: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    start.iter_days().take_while(move |d| *d <= end)
}

/// `n` business days after `d` on a calendar of Saturday-Sunday weekends and nothing else, by
/// a formula rather than by walking: a start on the weekend counts as from the Friday before.
fn weekend_oracle(d: NaiveDate, n: u32) -> NaiveDate {
    if n == 0 {
        return d;
    }
    let back = match d.weekday() {
        Weekday::Sat => 1,
        Weekday::Sun => 2,
        _ => 0,
    };
    let friday_or_d = d - Duration::days(back);
    let w = friday_or_d.weekday().num_days_from_monday() as i64;
    let n = n as i64;
    friday_or_d + Duration::days(n + 2 * ((w + n) / 5))
}

#[test]
fn weekends_alone_agree_with_the_closed_form_for_every_day_of_four_decades() {
    let c = Calendar::default();
    for d in days(date(2000, 1, 1), date(2039, 12, 31)) {
        for n in 0..=23 {
            let t = at(Tz::UTC, d, 12, 0);
            assert_eq!(
                c.nth_business_day_after(t, n),
                weekend_oracle(d, n),
                "{d} + {n} business days"
            );
        }
    }
}

#[test]
fn every_deadline_ends_a_business_day_and_counts_exactly_n_of_them() {
    let london = cal(Tz::Europe__London, &[Country::GbEng]);
    for d in days(date(1999, 1, 1), date(2041, 12, 31)) {
        // Early and late on the day: the day itself never counts.
        for (h, m) in [(0, 1), (23, 59)] {
            let t = at(Tz::Europe__London, d, h, m);
            for n in [1, 2, 5, 10] {
                let deadline = london.deadline(t, n);
                let last = london.local_date(deadline - Duration::nanoseconds(1));
                assert!(
                    london.is_business_day(last),
                    "{d} +{n}: {last} is a day off"
                );
                assert_eq!(
                    london.business_days_between(t, deadline - Duration::nanoseconds(1)),
                    n
                );
                assert_eq!(london.start_of(last.succ_opt().unwrap()), deadline);
                // Nothing earlier would do: the day before the last leaves one short.
                assert_eq!(
                    london.business_days_between(t, london.start_of(last) - Duration::seconds(1)),
                    n - 1
                );
                // The days left from the resolution's own morning are the n to come (plus the
                // resolution day itself when it is a business day).
                let left = london.business_days_left(t, deadline);
                assert_eq!(left, n + u32::from(london.is_business_day(d)));
            }
        }
    }
}

#[test]
fn every_local_day_starts_at_its_first_instant_even_where_midnight_is_skipped() {
    for tz in [
        Tz::Europe__London,
        Tz::America__New_York,
        Tz::America__Santiago,
        Tz::America__Havana,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Tokyo,
    ] {
        let c = cal(tz, &[]);
        for d in days(date(2018, 1, 1), date(2031, 12, 31)) {
            let start = c.start_of(d);
            assert_eq!(c.local_date(start), d, "{tz}: {d}");
            assert_eq!(
                c.local_date(start - Duration::minutes(1)),
                d.pred_opt().unwrap(),
                "{tz}: {d} starts later than its first instant"
            );
        }
    }
    // Chile moved its clocks from 00:00 to 01:00 on Sunday 2026-09-06: the day starts at 01:00.
    let santiago = cal(Tz::America__Santiago, &[]);
    assert_eq!(
        santiago.start_of(date(2026, 9, 6)),
        Utc.with_ymd_and_hms(2026, 9, 6, 4, 0, 0).unwrap()
    );
}

#[test]
fn a_resolution_late_on_friday_counts_from_monday() {
    let c = Calendar::default();
    let friday_late = Utc.with_ymd_and_hms(2026, 11, 6, 23, 58, 0).unwrap();
    let friday_early = Utc.with_ymd_and_hms(2026, 11, 6, 0, 5, 0).unwrap();
    let expected = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    assert_eq!(
        c.deadline(friday_late, 10),
        expected,
        "ends with Friday 20 November"
    );
    assert_eq!(c.deadline(friday_early, 10), expected);
    // From Saturday or Sunday, the same: the weekend does not count.
    let saturday = Utc.with_ymd_and_hms(2026, 11, 7, 10, 0, 0).unwrap();
    assert_eq!(c.deadline(saturday, 10), expected);
    assert_eq!(c.deadline(saturday, 0), saturday);
}

#[test]
fn a_thursday_evening_in_new_york_is_counted_as_thursday_there_and_friday_in_utc() {
    // Thursday 5 March 2026, 22:00 in New York is Friday 03:00 UTC.
    let t = Utc.with_ymd_and_hms(2026, 3, 6, 3, 0, 0).unwrap();
    let ny = cal(Tz::America__New_York, &[Country::Us]);
    let utc = cal(Tz::UTC, &[Country::Us]);
    // New York: Fri 6, 9-13, 16-19: the tenth is Thursday 19 March, ending at midnight EDT.
    assert_eq!(
        ny.deadline(t, 10),
        Utc.with_ymd_and_hms(2026, 3, 20, 4, 0, 0).unwrap()
    );
    // UTC: from Friday, the tenth is Friday 20 March.
    assert_eq!(
        utc.deadline(t, 10),
        Utc.with_ymd_and_hms(2026, 3, 21, 0, 0, 0).unwrap()
    );
}

#[test]
fn year_ends_skip_christmas_boxing_day_and_new_year_with_their_substitutes() {
    let london = cal(Tz::Europe__London, &[Country::GbEng]);
    // Thursday 24 December 2026: 25 (Fri) and 28 (Boxing Day's substitute) are off, then
    // 29, 30, 31, Friday 1 January 2027 is off, 4-8, 11, 12.
    let t = at(Tz::Europe__London, date(2026, 12, 24), 17, 0);
    assert_eq!(london.nth_business_day_after(t, 10), date(2027, 1, 12));
    assert_eq!(
        london.deadline(t, 10),
        Utc.with_ymd_and_hms(2027, 1, 13, 0, 0, 0).unwrap()
    );
    // The US observes New Year's Day 2022 (a Saturday) on Friday 31 December 2021.
    let us = cal(Tz::America__New_York, &[Country::Us]);
    assert!(!us.is_business_day(date(2021, 12, 31)));
    assert!(us.is_business_day(date(2022, 1, 3)));
    let t = at(Tz::America__New_York, date(2021, 12, 30), 9, 0);
    assert_eq!(us.nth_business_day_after(t, 1), date(2022, 1, 3));
}

#[test]
fn the_shipped_lists_match_the_published_holidays() {
    let check = |c: Country, y: i32, want: &[(u32, u32)]| {
        let got: Vec<(u32, u32)> = c
            .holidays(y)
            .iter()
            .map(|(d, _)| (d.month(), d.day()))
            .collect();
        assert_eq!(got, want, "{c:?} {y}");
    };
    // OPM's federal holidays.
    check(
        Country::Us,
        2025,
        &[
            (1, 1),
            (1, 20),
            (2, 17),
            (5, 26),
            (6, 19),
            (7, 4),
            (9, 1),
            (10, 13),
            (11, 11),
            (11, 27),
            (12, 25),
        ],
    );
    check(
        Country::Us,
        2026,
        &[
            (1, 1),
            (1, 19),
            (2, 16),
            (5, 25),
            (6, 19),
            (7, 3),
            (9, 7),
            (10, 12),
            (11, 11),
            (11, 26),
            (12, 25),
        ],
    );
    check(
        Country::Us,
        2021,
        &[
            (1, 1),
            (1, 18),
            (2, 15),
            (5, 31),
            (6, 18),
            (7, 5),
            (9, 6),
            (10, 11),
            (11, 11),
            (11, 25),
            (12, 24),
            (12, 31),
        ],
    );
    // GOV.UK's bank holidays in England and Wales.
    check(
        Country::GbEng,
        2026,
        &[
            (1, 1),
            (4, 3),
            (4, 6),
            (5, 4),
            (5, 25),
            (8, 31),
            (12, 25),
            (12, 28),
        ],
    );
    check(
        Country::GbEng,
        2022,
        &[
            (1, 3),
            (4, 15),
            (4, 18),
            (5, 2),
            (6, 2),
            (6, 3),
            (8, 29),
            (9, 19),
            (12, 26),
            (12, 27),
        ],
    );
    check(
        Country::GbEng,
        2020,
        &[
            (1, 1),
            (4, 10),
            (4, 13),
            (5, 8),
            (5, 25),
            (8, 31),
            (12, 25),
            (12, 28),
        ],
    );
    check(
        Country::GbEng,
        2021,
        &[
            (1, 1),
            (4, 2),
            (4, 5),
            (5, 3),
            (5, 31),
            (8, 30),
            (12, 27),
            (12, 28),
        ],
    );
    // Germany's nationwide holidays, and 2017's one-off Reformation Day.
    check(
        Country::De,
        2026,
        &[
            (1, 1),
            (4, 3),
            (4, 6),
            (5, 1),
            (5, 14),
            (5, 25),
            (10, 3),
            (12, 25),
            (12, 26),
        ],
    );
    assert!(
        Country::De
            .holidays(2017)
            .iter()
            .any(|(d, _)| *d == date(2017, 10, 31))
    );
    assert!(
        !Country::De
            .holidays(2018)
            .iter()
            .any(|(d, _)| *d == date(2018, 10, 31))
    );
    // France's jours fériés.
    check(
        Country::Fr,
        2026,
        &[
            (1, 1),
            (4, 6),
            (5, 1),
            (5, 8),
            (5, 14),
            (5, 25),
            (7, 14),
            (8, 15),
            (11, 1),
            (11, 11),
            (12, 25),
        ],
    );
}

#[test]
fn lists_hold_for_every_year_by_their_rules() {
    for y in 1990..=2100 {
        let e = easter(y);
        assert_eq!(e.weekday(), Weekday::Sun, "{y}");
        assert!(e >= date(y, 3, 22) && e <= date(y, 4, 25), "{y}: {e}");
        for c in Country::ALL {
            let list = c.holidays(y);
            assert!(
                list.windows(2).all(|w| w[0].0 < w[1].0),
                "{c:?} {y}: sorted, no repeats"
            );
            assert!(list.iter().all(|(d, _)| d.year() == y));
            if c != Country::De && c != Country::Fr {
                // The US and UK move every holiday off the weekend.
                assert!(
                    list.iter()
                        .all(|(d, _)| d.weekday().num_days_from_monday() < 5),
                    "{c:?} {y}: {list:?}"
                );
            }
        }
        let us = Country::Us.holidays(y);
        let thanksgiving = us
            .iter()
            .find(|(_, n)| n.starts_with("Thanksgiving"))
            .unwrap()
            .0;
        assert_eq!(thanksgiving.weekday(), Weekday::Thu);
        assert!((22..=28).contains(&thanksgiving.day()));
        // Eight bank holidays in England and Wales, more in a year with a one-off.
        let uk = Country::GbEng.holidays(y).len();
        assert!((8..=10).contains(&uk), "{y}: {uk}");
        // Nine, one more in 2017, one fewer when Ascension falls on 1 May (2008, 2087...).
        let ascension_on_may_day = e + Duration::days(39) == date(y, 5, 1);
        assert_eq!(
            Country::De.holidays(y).len(),
            9 + usize::from(y == 2017) - usize::from(ascension_on_may_day),
            "{y}"
        );
    }
}

#[test]
fn written_dates_and_a_custom_weekend_count_as_days_off() {
    let mut c = Calendar {
        weekend: vec![Weekday::Fri, Weekday::Sat],
        ..Calendar::default()
    };
    c.dates.insert(date(2026, 12, 1), "company day".into());
    assert_eq!(c.day_off(date(2026, 12, 1)).as_deref(), Some("company day"));
    assert_eq!(c.day_off(date(2026, 12, 4)).as_deref(), Some("weekend"));
    assert!(c.is_business_day(date(2026, 12, 6)), "Sunday works there");
    // Monday 30 Nov: Tue 1 is off, Wed 2, Thu 3, (Fri, Sat off), Sun 6.
    let t = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    assert_eq!(c.nth_business_day_after(t, 3), date(2026, 12, 6));
}
