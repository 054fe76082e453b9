//! Durations written the way restic's `--keep-within` takes them: `30d`,
//! `12h`, `1y6m`, `2y5m7d3h`, plus Bulwark's `w` (weeks) for convenience.
//!
//! Units (lower case only; order is free, each unit at most once):
//!
//! | unit | meaning |
//! |------|---------|
//! | `y`  | calendar years |
//! | `m`  | calendar **months** (not minutes, as in restic) |
//! | `w`  | weeks, folded into days (`2w` = `14d`; restic has no `w`) |
//! | `d`  | days |
//! | `h`  | hours |
//!
//! Two views of the same text are offered:
//!
//! * [`CalendarDuration`] keeps years/months/days/hours apart and subtracts
//!   them from a point in time with calendar arithmetic exactly like Go's
//!   `time.AddDate` (which restic uses), so `1m` before March 31st is
//!   March 3rd (or 2nd in a leap year), not February 28th.
//! * [`parse_duration`] flattens to a fixed [`std::time::Duration`] for
//!   settings that need one (timeouts, lock ages, ...), counting a year as 365
//!   days and a month as 30 days.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string was rejected. Messages quote the input and say what
/// is expected, so they can be shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected something like \"30d\", \"12h\", \"2w\" or \"1y6m\"")]
    Empty,
    #[error(
        "invalid duration {input:?}: expected a number at position {position}, found {found:?} \
         (durations look like \"30d\", \"12h\", \"2w\" or \"1y6m\"; negative values are not allowed)"
    )]
    ExpectedNumber {
        input: String,
        position: usize,
        found: char,
    },
    #[error(
        "invalid duration {input:?}: the number {number} has no unit \
         (add y, m, w, d or h, e.g. \"{number}d\")"
    )]
    MissingUnit { input: String, number: u64 },
    #[error(
        "invalid duration {input:?}: unknown unit {unit:?} after {number} \
         (units: y = years, m = months, w = weeks, d = days, h = hours)"
    )]
    UnknownUnit {
        input: String,
        number: u64,
        unit: char,
    },
    #[error("invalid duration {input:?}: the unit {unit:?} appears more than once")]
    DuplicateUnit { input: String, unit: char },
    #[error("invalid duration {input:?}: the value is too large")]
    Overflow { input: String },
}

/// A calendar duration: whole years, months, days and hours, kept apart
/// because months and years have no fixed length. This is restic's
/// `restic.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CalendarDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl CalendarDuration {
    /// The zero duration (written `0d`).
    pub const ZERO: CalendarDuration = CalendarDuration {
        years: 0,
        months: 0,
        days: 0,
        hours: 0,
    };

    pub const fn days(days: u32) -> Self {
        CalendarDuration {
            years: 0,
            months: 0,
            days,
            hours: 0,
        }
    }

    pub const fn hours(hours: u32) -> Self {
        CalendarDuration {
            years: 0,
            months: 0,
            days: 0,
            hours,
        }
    }

    /// Parses `30d`, `12h`, `2w`, `1y6m`, `2y5m7d3h`, ... (see the module docs).
    /// Surrounding whitespace is ignored, as restic does.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(DurationError::Empty);
        }
        let owned = || input.to_string();
        let mut seen: Vec<char> = Vec::with_capacity(5);
        let (mut years, mut months, mut weeks, mut days, mut hours) =
            (0u64, 0u64, 0u64, 0u64, 0u64);

        let mut chars = input.char_indices().peekable();
        while let Some(&(position, first)) = chars.peek() {
            if !first.is_ascii_digit() {
                return Err(DurationError::ExpectedNumber {
                    input: owned(),
                    position,
                    found: first,
                });
            }
            let mut number: u64 = 0;
            while let Some(&(_, c)) = chars.peek() {
                let Some(digit) = c.to_digit(10).filter(|_| c.is_ascii_digit()) else {
                    break;
                };
                number = number
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(|| DurationError::Overflow { input: owned() })?;
                chars.next();
            }
            let Some((_, unit)) = chars.next() else {
                return Err(DurationError::MissingUnit {
                    input: owned(),
                    number,
                });
            };
            let slot = match unit {
                'y' => &mut years,
                'm' => &mut months,
                'w' => &mut weeks,
                'd' => &mut days,
                'h' => &mut hours,
                _ => {
                    return Err(DurationError::UnknownUnit {
                        input: owned(),
                        number,
                        unit,
                    });
                }
            };
            if seen.contains(&unit) {
                return Err(DurationError::DuplicateUnit {
                    input: owned(),
                    unit,
                });
            }
            seen.push(unit);
            *slot = number;
        }

        let overflow = || DurationError::Overflow { input: owned() };
        let to_u32 = |v: u64| u32::try_from(v).map_err(|_| overflow());
        let all_days = weeks
            .checked_mul(7)
            .and_then(|w| w.checked_add(days))
            .ok_or_else(overflow)?;
        Ok(CalendarDuration {
            years: to_u32(years)?,
            months: to_u32(months)?,
            days: to_u32(all_days)?,
            hours: to_u32(hours)?,
        })
    }

    /// True when every component is zero. A zero `--keep-within` is "not set",
    /// as in restic (`Duration.Zero()`).
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// The point in time this long before `t`, with restic's arithmetic:
    /// `t.AddDate(-years, -months, -days).Add(-hours * time.Hour)`.
    ///
    /// The date part is computed on `t`'s wall clock in `t`'s own (fixed)
    /// offset and normalised like Go's `time.Date`: an out-of-range day rolls
    /// over into the next month (March 31st minus one month is "February
    /// 31st", i.e. March 3rd, or March 2nd in a leap year). Hours are then
    /// subtracted as an exact duration.
    ///
    /// Returns `None` if the result would fall outside chrono's range (about
    /// 262,000 years); callers treat that as "before every snapshot".
    pub fn before(&self, t: &DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let local = t.naive_local();
        let month0 = i64::from(local.year()) * 12 + i64::from(local.month0())
            - i64::from(self.months)
            - i64::from(self.years) * 12;
        let year = i32::try_from(month0.div_euclid(12)).ok()?;
        let month = u32::try_from(month0.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let day_shift = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(ChronoDuration::try_days(day_shift)?)?;
        let shifted = t
            .offset()
            .from_local_datetime(&date.and_time(local.time()))
            .single()?;
        shifted.checked_sub_signed(ChronoDuration::try_hours(i64::from(self.hours))?)
    }

    /// A fixed-length approximation: a year is 365 days, a month 30 days.
    pub fn approximate(&self) -> StdDuration {
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
        // Cannot overflow: 4 * u32::MAX * 365 days in seconds is < 2^60.
        StdDuration::from_secs(
            u64::from(self.years) * 365 * DAY
                + u64::from(self.months) * 30 * DAY
                + u64::from(self.days) * DAY
                + u64::from(self.hours) * HOUR,
        )
    }
}

/// Restic's spelling: `2y5m7d3h`, zero components left out; the zero
/// duration is written `0d`. Weeks were folded into days when parsing.
impl fmt::Display for CalendarDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (value, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CalendarDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CalendarDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalendarDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A length of time in the largest whole unit that says it exactly enough: `7d`, `36h`,
/// `90m`, `45s` (days from two days up, hours from two hours up). The one style of every
/// human-readable message.
pub fn human(d: StdDuration) -> String {
    let s = d.as_secs();
    if d == StdDuration::MAX {
        "forever".into()
    } else if s >= 2 * 86_400 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s >= 2 * 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 2 * 86_400 {
        format!("{:.1}d", s as f64 / 86_400.0)
    } else if s >= 2 * 3600 {
        format!("{:.1}h", s as f64 / 3600.0)
    } else if s >= 120 {
        format!("{}m", s / 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Parses `24h`, `30d`, `90d`, `2w`, `1y`, `1y6m`, ... into a fixed
/// [`std::time::Duration`], for settings that need one length of time.
///
/// `y` counts as 365 days and `m` (months, not minutes) as 30 days; use
/// [`CalendarDuration`] where calendar arithmetic matters (retention does).
pub fn parse_duration(s: &str) -> Result<StdDuration, DurationError> {
    Ok(CalendarDuration::parse(s)?.approximate())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd(years: u32, months: u32, days: u32, hours: u32) -> CalendarDuration {
        CalendarDuration {
            years,
            months,
            days,
            hours,
        }
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(CalendarDuration::parse("30d").unwrap(), cd(0, 0, 30, 0));
        assert_eq!(CalendarDuration::parse("12h").unwrap(), cd(0, 0, 0, 12));
        assert_eq!(CalendarDuration::parse("2w").unwrap(), cd(0, 0, 14, 0));
        assert_eq!(CalendarDuration::parse("1y6m").unwrap(), cd(1, 6, 0, 0));
        assert_eq!(CalendarDuration::parse("90d").unwrap(), cd(0, 0, 90, 0));
        assert_eq!(CalendarDuration::parse("2y5m7d3h").unwrap(), cd(2, 5, 7, 3));
        // Any order, surrounding whitespace ignored (restic trims too).
        assert_eq!(CalendarDuration::parse(" 3h2y ").unwrap(), cd(2, 0, 0, 3));
        assert_eq!(CalendarDuration::parse("1w2d").unwrap(), cd(0, 0, 9, 0));
        assert_eq!(
            CalendarDuration::parse("0d").unwrap(),
            CalendarDuration::ZERO
        );
        assert!(CalendarDuration::parse("0d").unwrap().is_zero());
        assert_eq!("7d".parse::<CalendarDuration>().unwrap(), cd(0, 0, 7, 0));
    }

    #[test]
    fn rejects_malformed_input_with_clear_errors() {
        assert_eq!(CalendarDuration::parse(""), Err(DurationError::Empty));
        assert_eq!(CalendarDuration::parse("   "), Err(DurationError::Empty));
        assert!(matches!(
            CalendarDuration::parse("30"),
            Err(DurationError::MissingUnit { number: 30, .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("d"),
            Err(DurationError::ExpectedNumber {
                position: 0,
                found: 'd',
                ..
            })
        ));
        assert!(matches!(
            CalendarDuration::parse("-1d"),
            Err(DurationError::ExpectedNumber { found: '-', .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("1.5d"),
            Err(DurationError::UnknownUnit {
                number: 1,
                unit: '.',
                ..
            })
        ));
        assert!(matches!(
            CalendarDuration::parse("30x"),
            Err(DurationError::UnknownUnit { unit: 'x', .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("30D"),
            Err(DurationError::UnknownUnit { unit: 'D', .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("1d 2h"),
            Err(DurationError::ExpectedNumber {
                position: 2,
                found: ' ',
                ..
            })
        ));
        assert!(matches!(
            CalendarDuration::parse("1d2d"),
            Err(DurationError::DuplicateUnit { unit: 'd', .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("99999999999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("4294967296h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            CalendarDuration::parse("613566757w"),
            Err(DurationError::Overflow { .. })
        ));
        // Non-ASCII digits are not numbers here.
        assert!(CalendarDuration::parse("٣d").is_err());

        let message = CalendarDuration::parse("30x").unwrap_err().to_string();
        assert!(
            message.contains("\"30x\"") && message.contains("unknown unit"),
            "{message}"
        );
        let message = CalendarDuration::parse("30").unwrap_err().to_string();
        assert!(message.contains("\"30d\""), "{message}");
    }

    #[test]
    fn display_uses_restic_spelling() {
        assert_eq!(cd(2, 5, 7, 3).to_string(), "2y5m7d3h");
        assert_eq!(cd(0, 0, 30, 0).to_string(), "30d");
        assert_eq!(CalendarDuration::parse("2w").unwrap().to_string(), "14d");
        assert_eq!(CalendarDuration::ZERO.to_string(), "0d");
        for text in ["30d", "12h", "1y6m", "2y5m7d3h", "0d"] {
            let d = CalendarDuration::parse(text).unwrap();
            assert_eq!(CalendarDuration::parse(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let d = cd(1, 6, 0, 0);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1y6m\"");
        assert_eq!(
            serde_json::from_str::<CalendarDuration>("\"1y6m\"").unwrap(),
            d
        );
        let err = serde_json::from_str::<CalendarDuration>("\"1q\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }

    #[test]
    fn parse_duration_gives_fixed_lengths() {
        let day = 24 * 3600;
        assert_eq!(parse_duration("24h").unwrap(), StdDuration::from_secs(day));
        assert_eq!(
            parse_duration("30d").unwrap(),
            StdDuration::from_secs(30 * day)
        );
        assert_eq!(
            parse_duration("90d").unwrap(),
            StdDuration::from_secs(90 * day)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            StdDuration::from_secs(14 * day)
        );
        assert_eq!(
            parse_duration("1y").unwrap(),
            StdDuration::from_secs(365 * day)
        );
        assert_eq!(
            parse_duration("1m").unwrap(),
            StdDuration::from_secs(30 * day)
        );
        assert_eq!(
            parse_duration("1y6m1h").unwrap(),
            StdDuration::from_secs((365 + 180) * day + 3600)
        );
        assert_eq!(
            parse_duration("nope"),
            Err(DurationError::ExpectedNumber {
                input: "nope".into(),
                position: 0,
                found: 'n'
            })
        );
        // The largest value still fits.
        let max = parse_duration("4294967295y4294967295m4294967295d4294967295h").unwrap();
        assert!(max > StdDuration::from_secs(u64::from(u32::MAX) * 365 * day));
    }

    #[test]
    fn before_follows_go_add_date() {
        // Plain days and hours are exact.
        assert_eq!(
            CalendarDuration::days(30).before(&at("2026-11-27T02:00:00+00:00")),
            Some(at("2026-10-28T02:00:00+00:00"))
        );
        assert_eq!(
            cd(0, 0, 1, 3).before(&at("2026-01-01T01:00:00+05:30")),
            Some(at("2025-12-30T22:00:00+05:30"))
        );
        // Go normalises "February 31st" to March 3rd (2026) / March 2nd (2024).
        assert_eq!(
            cd(0, 1, 0, 0).before(&at("2026-03-31T12:00:00+00:00")),
            Some(at("2026-03-03T12:00:00+00:00"))
        );
        assert_eq!(
            cd(0, 1, 0, 0).before(&at("2024-03-31T12:00:00+00:00")),
            Some(at("2024-03-02T12:00:00+00:00"))
        );
        // February 29th minus a year is "February 29th 2023", i.e. March 1st.
        assert_eq!(
            cd(1, 0, 0, 0).before(&at("2024-02-29T00:00:00-07:00")),
            Some(at("2023-03-01T00:00:00-07:00"))
        );
        // Months cross year boundaries.
        assert_eq!(
            cd(1, 14, 0, 0).before(&at("2026-01-15T08:00:00+09:00")),
            Some(at("2023-11-15T08:00:00+09:00"))
        );
        // The calendar is the one of the time's own offset: 00:30 on March 1st
        // in +02:00 is still February in UTC, but months are counted locally.
        assert_eq!(
            cd(0, 1, 0, 0).before(&at("2026-03-01T00:30:00+02:00")),
            Some(at("2026-02-01T00:30:00+02:00"))
        );
        // Far out of range: None, never a panic.
        assert_eq!(
            cd(u32::MAX, 0, 0, 0).before(&at("2026-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            cd(0, 0, u32::MAX, 0).before(&at("2026-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            CalendarDuration::ZERO.before(&at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:00:00Z"))
        );
    }
}
