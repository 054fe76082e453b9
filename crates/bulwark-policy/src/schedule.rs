//! When a dataset's jobs run: `hourly`, `daily at 02:00`, `weekly on sunday at 03:00`,
//! `monthly on 1 at 04:00`, `every 6h`, or a five-field cron expression. Times are UTC.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

#[derive(Clone, Debug)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid schedule '{}': {} (use e.g. `daily at 02:00`, `every 6h` or a cron expression like `0 2 * * *`)",
    crate::one_line(.text),
    crate::one_line(.reason)
)]
pub struct ScheduleError {
    pub text: String,
    pub reason: String,
}

fn hh_mm(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Translate the friendly forms to cron; anything else is taken as cron as it is.
fn to_cron(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    let at = |w: &[&str]| -> Result<(u32, u32), String> {
        match w {
            [] => Ok((0, 0)),
            ["at", time] => hh_mm(time).ok_or_else(|| format!("bad time '{time}'")),
            _ => Err("expected `at HH:MM`".into()),
        }
    };
    Ok(match words.as_slice() {
        ["hourly"] => "0 * * * *".into(),
        ["daily", rest @ ..] => {
            let (h, m) = at(rest)?;
            format!("{m} {h} * * *")
        }
        ["weekly", "on", day, rest @ ..] => {
            let d = DAYS
                .iter()
                .position(|n| n.starts_with(day.get(..3).unwrap_or(day)) && n.starts_with(day))
                .ok_or_else(|| format!("unknown day '{day}'"))?;
            let (h, m) = at(rest)?;
            format!("{m} {h} * * {d}")
        }
        ["monthly", "on", day, rest @ ..] => {
            let d: u32 = day
                .parse()
                .ok()
                .filter(|d| (1..=28).contains(d))
                .ok_or("day of month must be 1 to 28")?;
            let (h, m) = at(rest)?;
            format!("{m} {h} {d} * *")
        }
        ["every", n] if n.ends_with('h') => {
            let h: u32 = n[..n.len() - 1]
                .parse()
                .map_err(|_| format!("bad interval '{n}'"))?;
            if h == 0 || 24 % h != 0 {
                return Err("hours must divide 24 (1, 2, 3, 4, 6, 8, 12, 24)".into());
            }
            if h == 24 {
                "0 0 * * *".into()
            } else {
                format!("0 */{h} * * *")
            }
        }
        _ => text.trim().to_string(),
    })
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            text: text.to_string(),
            reason,
        };
        let expr = to_cron(text).map_err(err)?;
        if expr.split_whitespace().count() != 5 {
            return Err(err(
                "a cron expression has five fields: minute hour day month weekday".into(),
            ));
        }
        let cron = Cron::from_str(&expr).map_err(|e| err(e.to_string()))?;
        // February 30th parses but never comes: refuse it here rather than let every later
        // search for a next run scan the calendar to croner's limit (tens of milliseconds each).
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        if cron.find_next_occurrence(&start, false).is_err() {
            return Err(err("no such date ever comes".into()));
        }
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }

    /// The last run at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t, true).ok()
    }

    /// The longest gap between two consecutive runs, over a year of runs: what the schedule
    /// alone costs in recovery point.
    pub fn max_interval(&self) -> Duration {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        let end = start + chrono::Duration::days(400);
        let mut prev = match self.next_after(start) {
            Some(t) => t,
            None => return Duration::MAX,
        };
        let mut max = chrono::Duration::zero();
        for _ in 0..5000 {
            let Some(next) = self.next_after(prev) else {
                return Duration::MAX;
            };
            max = max.max(next - prev);
            if next > end {
                break;
            }
            prev = next;
        }
        max.to_std().unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_forms_and_cron_agree() {
        let day = Duration::from_secs(86_400);
        for (text, interval) in [
            ("daily at 02:00", day),
            ("0 2 * * *", day),
            ("hourly", Duration::from_secs(3600)),
            ("every 6h", Duration::from_secs(6 * 3600)),
            ("weekly on sunday at 03:00", 7 * day),
            ("monthly on 1 at 04:00", 31 * day),
            ("0 2 * * 1-5", 3 * day),
        ] {
            let s: Schedule = text.parse().unwrap();
            assert_eq!(s.max_interval(), interval, "{text}");
        }
        let s: Schedule = "daily at 02:00".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap()
        );
        assert_eq!(
            s.last_at_or_before(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
        );
        for bad in [
            "0 0 30 2 *",
            "0 0 31 4 *",
            "daily at 25:00",
            "every 5h",
            "weekly on funday",
            "1 2 3",
            "banana",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
