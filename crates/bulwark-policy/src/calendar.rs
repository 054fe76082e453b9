//! Business days: the clock post-mortem deadlines run on. A [`Calendar`] is a time zone, the
//! weekdays that are weekend, and the days that are holidays: dates written in the policy file
//! and the public holidays of the countries it names, computed by rule for any year (Easter by
//! the Gregorian computus, "last Monday of May", weekend substitutes).
//!
//! Invariants:
//! - A business day is a local date that is neither weekend nor holiday.
//! - "Within `n` business days of `t`" ends when the `n`th business day after `t`'s local date
//!   ends, i.e. at local midnight starting the day after it ([`Calendar::deadline`]). The day of
//!   `t` itself never counts, whether `t` is 09:00 or 23:59 on it, nor whether it was a business
//!   day: the clock starts the next day, as people count "ten business days".
//! - Days are the calendar's local days: a Friday 23:30 in New York is a Saturday in UTC, and is
//!   counted as the Friday it was there.
//! - A local midnight that does not exist (a time-zone change at midnight) is the first instant
//!   of that day that does.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A country (or part of one) whose public holidays Bulwark knows by rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Country {
    /// United States: the federal holidays (5 U.S.C. 6103), with their observed days.
    #[serde(rename = "US")]
    Us,
    /// United Kingdom, England and Wales: the bank holidays, with substitute days.
    #[serde(rename = "GB-ENG")]
    GbEng,
    /// Germany: the nine nationwide public holidays.
    #[serde(rename = "DE")]
    De,
    /// France: the eleven jours fériés of metropolitan France.
    #[serde(rename = "FR")]
    Fr,
}

impl Country {
    pub const ALL: [Country; 4] = [Country::Us, Country::GbEng, Country::De, Country::Fr];

    /// The name the policy file uses: `US`, `GB-ENG`, `DE`, `FR`.
    pub fn code(self) -> &'static str {
        match self {
            Country::Us => "US",
            Country::GbEng => "GB-ENG",
            Country::De => "DE",
            Country::Fr => "FR",
        }
    }

    pub fn parse(s: &str) -> Option<Country> {
        let s = s.trim().to_ascii_uppercase();
        let s = match s.as_str() {
            "GB" | "UK" | "GB-EAW" | "GB-WLS" => "GB-ENG",
            other => other,
        };
        Country::ALL.into_iter().find(|c| c.code() == s)
    }

    /// The holidays (observed days) that fall in `year`, with their names, in date order.
    pub fn holidays(self, year: i32) -> Vec<(NaiveDate, &'static str)> {
        // Observed days can cross a year end (the US observes 1 January on 31 December when it
        // is a Saturday): compute the neighbours too and keep what falls in `year`.
        let mut out: Vec<(NaiveDate, &'static str)> = (year - 1..=year + 1)
            .flat_map(|y| self.rules(y))
            .filter(|(d, _)| d.year() == year)
            .collect();
        out.sort();
        out.dedup_by_key(|(d, _)| *d);
        out
    }

    fn rules(self, y: i32) -> Vec<(NaiveDate, &'static str)> {
        let easter = easter(y);
        let e = |days: i64| easter + Duration::days(days);
        match self {
            Country::Us => {
                let mut v = vec![
                    (observed_us(date(y, 1, 1)), "New Year's Day"),
                    (nth_weekday(y, 2, Weekday::Mon, 3), "Washington's Birthday"),
                    (last_weekday(y, 5, Weekday::Mon), "Memorial Day"),
                    (observed_us(date(y, 7, 4)), "Independence Day"),
                    (nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day"),
                    (nth_weekday(y, 10, Weekday::Mon, 2), "Columbus Day"),
                    (observed_us(date(y, 11, 11)), "Veterans Day"),
                    (nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day"),
                    (observed_us(date(y, 12, 25)), "Christmas Day"),
                ];
                if y >= 1986 {
                    v.push((
                        nth_weekday(y, 1, Weekday::Mon, 3),
                        "Birthday of Martin Luther King, Jr.",
                    ));
                }
                if y >= 2021 {
                    v.push((
                        observed_us(date(y, 6, 19)),
                        "Juneteenth National Independence Day",
                    ));
                }
                v
            }
            Country::GbEng => {
                let early_may = match y {
                    1995 | 2020 => date(y, 5, 8),
                    _ => nth_weekday(y, 5, Weekday::Mon, 1),
                };
                let spring = match y {
                    2002 | 2012 => date(y, 6, 4),
                    2022 => date(y, 6, 2),
                    _ => last_weekday(y, 5, Weekday::Mon),
                };
                let mut v = vec![
                    (next_monday_if_weekend(date(y, 1, 1)), "New Year's Day"),
                    (e(-2), "Good Friday"),
                    (e(1), "Easter Monday"),
                    (early_may, "Early May bank holiday"),
                    (spring, "Spring bank holiday"),
                    (last_weekday(y, 8, Weekday::Mon), "Summer bank holiday"),
                ];
                let christmas = date(y, 12, 25);
                let (c, b) = match christmas.weekday() {
                    // Boxing Day on Saturday moves to Monday.
                    Weekday::Fri => (christmas, date(y, 12, 28)),
                    Weekday::Sat => (date(y, 12, 27), date(y, 12, 28)),
                    Weekday::Sun => (date(y, 12, 27), date(y, 12, 26)),
                    _ => (christmas, date(y, 12, 26)),
                };
                v.push((c, "Christmas Day"));
                v.push((b, "Boxing Day"));
                let once: &[(i32, u32, u32, &'static str)] = &[
                    (1999, 12, 31, "Millennium celebrations"),
                    (2002, 6, 3, "Golden Jubilee bank holiday"),
                    (2011, 4, 29, "Royal wedding"),
                    (2012, 6, 5, "Diamond Jubilee bank holiday"),
                    (2022, 6, 3, "Platinum Jubilee bank holiday"),
                    (2022, 9, 19, "State Funeral of Queen Elizabeth II"),
                    (
                        2023,
                        5,
                        8,
                        "Bank holiday for the coronation of King Charles III",
                    ),
                ];
                v.extend(
                    once.iter()
                        .filter(|o| o.0 == y)
                        .map(|&(y, m, d, name)| (date(y, m, d), name)),
                );
                v
            }
            Country::De => {
                let mut v = vec![
                    (date(y, 1, 1), "Neujahr"),
                    (e(-2), "Karfreitag"),
                    (e(1), "Ostermontag"),
                    (date(y, 5, 1), "Tag der Arbeit"),
                    (e(39), "Christi Himmelfahrt"),
                    (e(50), "Pfingstmontag"),
                    (date(y, 10, 3), "Tag der Deutschen Einheit"),
                    (date(y, 12, 25), "1. Weihnachtstag"),
                    (date(y, 12, 26), "2. Weihnachtstag"),
                ];
                if y == 2017 {
                    v.push((date(y, 10, 31), "Reformationstag (500 Jahre)"));
                }
                v
            }
            Country::Fr => vec![
                (date(y, 1, 1), "Jour de l'an"),
                (e(1), "Lundi de Pâques"),
                (date(y, 5, 1), "Fête du Travail"),
                (date(y, 5, 8), "Victoire 1945"),
                (e(39), "Ascension"),
                (e(50), "Lundi de Pentecôte"),
                (date(y, 7, 14), "Fête nationale"),
                (date(y, 8, 15), "Assomption"),
                (date(y, 11, 1), "Toussaint"),
                (date(y, 11, 11), "Armistice 1918"),
                (date(y, 12, 25), "Noël"),
            ],
        }
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// Easter Sunday of the Gregorian calendar (the anonymous computus of Meeus, Jones and Butcher).
pub fn easter(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(year, month as u32, day as u32)
}

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(y: i32, m: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(y, m, weekday, n).expect("every month has four")
}

fn last_weekday(y: i32, m: u32, weekday: Weekday) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(y, m, weekday, 5)
        .unwrap_or_else(|| nth_weekday(y, m, weekday, 4))
}

/// The US rule: a holiday on Saturday is observed on Friday, on Sunday on Monday.
fn observed_us(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d - Duration::days(1),
        Weekday::Sun => d + Duration::days(1),
        _ => d,
    }
}

fn next_monday_if_weekend(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d + Duration::days(2),
        Weekday::Sun => d + Duration::days(1),
        _ => d,
    }
}

/// Where business days are counted: a time zone, the weekend, and the holidays.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calendar {
    #[serde(serialize_with = "tz_name")]
    pub time_zone: Tz,
    pub weekend: Vec<Weekday>,
    /// Named lists of public holidays.
    pub countries: Vec<Country>,
    /// Further days off written in the policy file (a company closure), with a name.
    pub dates: BTreeMap<NaiveDate, String>,
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl Default for Calendar {
    /// UTC, Saturday and Sunday off, no holidays.
    fn default() -> Self {
        Calendar {
            time_zone: Tz::UTC,
            weekend: vec![Weekday::Sat, Weekday::Sun],
            countries: Vec::new(),
            dates: BTreeMap::new(),
        }
    }
}

/// The holidays of a year, looked up as days are walked.
#[derive(Default)]
struct Years(BTreeMap<i32, BTreeMap<NaiveDate, String>>);

impl Calendar {
    /// Every holiday of `year` (written dates and the countries'), by date.
    pub fn holidays(&self, year: i32) -> BTreeMap<NaiveDate, String> {
        let mut out: BTreeMap<NaiveDate, String> = BTreeMap::new();
        for c in &self.countries {
            for (d, name) in c.holidays(year) {
                out.entry(d)
                    .and_modify(|n| {
                        if !n.contains(name) {
                            *n = format!("{n}; {name}");
                        }
                    })
                    .or_insert_with(|| format!("{name} ({})", c.code()));
            }
        }
        for (d, name) in self.dates.range(date(year, 1, 1)..=date(year, 12, 31)) {
            out.insert(*d, name.clone());
        }
        out
    }

    /// Why `d` is not a business day (`weekend`, or the holiday's name), or `None` when it is.
    pub fn day_off(&self, d: NaiveDate) -> Option<String> {
        self.off(d, &mut Years::default())
    }

    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        self.day_off(d).is_none()
    }

    fn off(&self, d: NaiveDate, years: &mut Years) -> Option<String> {
        if self.weekend.contains(&d.weekday()) {
            return Some("weekend".into());
        }
        years
            .0
            .entry(d.year())
            .or_insert_with(|| self.holidays(d.year()))
            .get(&d)
            .cloned()
    }

    /// The local date of `t`.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.time_zone).date_naive()
    }

    /// The first instant of local day `d`.
    pub fn start_of(&self, d: NaiveDate) -> DateTime<Utc> {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight");
        // A day whose midnight was skipped by a time-zone change starts at the first minute
        // that exists; no zone skips more than a few hours.
        for minutes in (0..=24 * 60).step_by(15) {
            match self
                .time_zone
                .from_local_datetime(&(midnight + Duration::minutes(minutes)))
            {
                LocalResult::Single(t) => return t.to_utc(),
                LocalResult::Ambiguous(earliest, _) => return earliest.to_utc(),
                LocalResult::None => continue,
            }
        }
        Utc.from_utc_datetime(&midnight)
    }

    /// The `n`th business day after the local date of `t` (`t`'s own date for `n = 0`).
    pub fn nth_business_day_after(&self, t: DateTime<Utc>, n: u32) -> NaiveDate {
        let mut years = Years::default();
        let mut d = self.local_date(t);
        let mut counted = 0;
        // A calendar where no day is a business day never reaches `n`: stop after 20 years,
        // which no real calendar needs (policy parsing refuses a seven-day weekend).
        let mut steps = 0;
        while counted < n && steps < 366 * 20 {
            d = d.succ_opt().expect("dates far from the end of time");
            steps += 1;
            if self.off(d, &mut years).is_none() {
                counted += 1;
            }
        }
        d
    }

    /// When "within `n` business days of `t`" ends: the local midnight after the `n`th business
    /// day after `t`'s local date. `t` itself for `n = 0`.
    pub fn deadline(&self, t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        if n == 0 {
            return t;
        }
        let last = self.nth_business_day_after(t, n);
        self.start_of(last.succ_opt().expect("dates far from the end of time"))
    }

    /// Business days from `now`'s local date to the local day `deadline` ends on, both included
    /// (today counts while it is a business day): what is left to meet the deadline. 0 when the
    /// deadline has passed.
    pub fn business_days_left(&self, now: DateTime<Utc>, deadline: DateTime<Utc>) -> u32 {
        if now >= deadline {
            return 0;
        }
        let mut years = Years::default();
        let last = self.local_date(deadline - Duration::nanoseconds(1));
        let mut d = self.local_date(now);
        let mut n = 0;
        while d <= last {
            if self.off(d, &mut years).is_none() {
                n += 1;
            }
            d = d.succ_opt().expect("dates far from the end of time");
        }
        n
    }

    /// Business days strictly after `from`'s local date up to and including `to`'s.
    pub fn business_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        let mut years = Years::default();
        let (mut d, last) = (self.local_date(from), self.local_date(to));
        let mut n = 0;
        while d < last {
            d = d.succ_opt().expect("dates far from the end of time");
            if self.off(d, &mut years).is_none() {
                n += 1;
            }
        }
        n
    }
}

/// A weekday by its English name (`saturday`, `sat`).
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    s.trim().to_ascii_lowercase().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_matches_the_published_tables() {
        let known = [
            (1961, 4, 2),
            (1981, 4, 19),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, d) in known {
            assert_eq!(easter(y), date(y, m, d), "{y}");
        }
    }
}
