//! Hostile-input fuzzing of the policy's parsers of user input: `bulwark.toml`
//! (`Config::parse`), durations (`parse_duration`, `CalendarDuration::parse`), schedules
//! (`Schedule::from_str`, then the next and previous runs and the longest interval) and keep
//! counts, on stable Rust with the kit in `bulwark-repo/tests/support/fuzzing.rs`.
//!
//! Inputs are arbitrary strings, line- and byte-mutations of a full valid configuration
//! (values replaced by -1, 2^63, 1e400, `[[[...]]]` 3000 deep, impossible cron dates...) and
//! grammar-shaped strings. Nothing may panic; errors are one line; what parses is used the way
//! Bulwark uses it (commitment checks, schedule arithmetic) and round-trips where it prints.
//!
//! `cargo test -p bulwark-policy --test fuzz_policy -- --nocapture` prints the cases per
//! parser; `BULWARK_THOROUGH=1` runs 100 times as many.

#[path = "../../bulwark-repo/tests/support/fuzzing.rs"]
mod fuzzing;

use std::str::FromStr;

use bulwark_policy::config::Config;
use bulwark_policy::retention::parse_keep_count;
use bulwark_policy::schedule::Schedule;
use bulwark_policy::{CalendarDuration, UNLIMITED, parse_duration};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use fuzzing::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const GOOD: &str = r#"
ledger = "/var/lib/bulwark/ledger.sqlite"

[policy]
rpo = "24h"
rto = "4h"
retention = "1y6m"
restore_test_every = "90d"
drill_every = "1y"
review_every = "1y"
status_update_every = "2h"
postmortem_within_business_days = 10
offsite_required_for = ["critical"]

[repositories.primary]
url = "s3://backups-eu/prod?region=eu-west-1"
region = "eu-west-1"
password_file = "/etc/bulwark/pass"

[repositories.offsite]
url = "/mnt/offsite/repo"
replica_of = "primary"
key_file = "/etc/bulwark/offsite.key"

[datasets.orders-db]
kind = "postgres"
source = "postgres://app@db1/orders"
tier = "critical"
schedule = "daily at 02:00"
repository = "primary"
retention = { keep_within = "30d", keep_last = 3, keep_daily = 7, keep_weekly = 4, keep_monthly = "unlimited", keep_yearly = -1, keep_tags = ["keep"] }
restore_test = { every = "7d", checks = ["SELECT count(*) > 0 FROM orders"] }

[datasets.docs]
kind = "files"
paths = ["/srv/docs"]
exclude = ["*.tmp"]
schedule = "0 */4 * * 1-5"

[datasets.stream]
kind = "command"
command = ["pg_dumpall"]
schedule = "weekly on sunday at 03:00"

[roles.incident-commander]
owner = "alice"
alternates = ["bob"]
critical = true

[notifications.ops]
command = ["mail", "ops@example.com"]
"#;

fn one_line(what: &str, message: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !message.is_empty() && !message.contains('\n'),
        "{what}: the error is not one line: {message:?}"
    );
    Ok(())
}

/// The extremes of chrono's range, where date arithmetic overflows first.
fn extreme_times() -> Vec<DateTime<FixedOffset>> {
    let utc = FixedOffset::east_opt(0).unwrap();
    vec![
        DateTime::<Utc>::MIN_UTC.with_timezone(&utc),
        DateTime::<Utc>::MAX_UTC.with_timezone(&utc),
        DateTime::<Utc>::MAX_UTC.with_timezone(&FixedOffset::west_opt(86_399).unwrap()),
        DateTime::<Utc>::MIN_UTC.with_timezone(&FixedOffset::east_opt(86_399).unwrap()),
        utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap(),
    ]
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    // toml keeps some state per nesting level (`[[[...` 3000 deep is among the mutations):
    // proportional to the text, so a looser bound than for binary formats.
    let allowed = 64 * text.len() + (1 << 20);
    let r = allocation_within("Config::parse", text.len(), allowed, || {
        Config::parse("bulwark.toml", text)
    })?;
    match r {
        Err(e) => one_line("Config::parse", &e.to_string())?,
        Ok(config) => {
            accepted();
            let _ = bulwark_policy::commitments::check(&config);
            let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
            for d in config.datasets.values() {
                let _ = d.schedule.next_after(now);
                let _ = d.schedule.last_at_or_before(now);
                let _ = d.schedule.max_interval();
            }
        }
    }
    Ok(())
}

#[test]
fn configuration_files() {
    assert!(
        Config::parse("bulwark.toml", GOOD).is_ok(),
        "the seed parses"
    );
    fuzz("bulwark.toml (text)", 3000, "(?s).{0,200}", |t| {
        check_config(&t)
    });
    fuzz(
        "bulwark.toml (mutated)",
        6000,
        hostile_text(GOOD.to_string()),
        |t| check_config(&t),
    );
    let mut n = 0;
    for len in 0..GOOD.len() {
        if GOOD.is_char_boundary(len) {
            check_config(&GOOD[..len]).unwrap();
            n += 1;
        }
    }
    for deep in [
        format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("a = {}", "{ b = ".repeat(100_000)),
        format!("{}= 1", "a.".repeat(100_000)),
        "[[".repeat(100_000),
    ] {
        // No recursion that could exhaust the stack, and state proportional to the text.
        let (r, largest) = largest_allocation(|| Config::parse("bulwark.toml", &deep));
        let e = r.expect_err("nothing this deep is a configuration");
        one_line("Config::parse", &e.to_string()).unwrap();
        assert!(
            largest <= 64 * deep.len(),
            "{largest} bytes for {}",
            deep.len()
        );
        n += 1;
    }
    report("bulwark.toml (truncations, deep nesting)", n);
}

/// Durations the way people type them, and the ways they go wrong.
fn duration_text() -> impl Strategy<Value = String> {
    let part = (
        prop_oneof!["[0-9]{0,3}", "[0-9]{9,22}", Just("4294967295".to_string())],
        prop::sample::select(vec!["y", "m", "w", "d", "h", "", "s", "D", " ", "-", "٣"]),
    )
        .prop_map(|(n, u)| format!("{n}{u}"));
    prop_oneof![
        3 => prop::collection::vec(part, 1..6).prop_map(|p| p.concat()),
        1 => "(?s).{0,24}",
    ]
}

#[test]
fn durations() {
    let times = extreme_times();
    fuzz("duration", 20_000, duration_text(), |text| {
        let fixed = parse_duration(&text);
        let cal = CalendarDuration::parse(&text);
        prop_assert_eq!(fixed.is_ok(), cal.is_ok());
        match cal {
            Err(e) => one_line("CalendarDuration::parse", &e.to_string())?,
            Ok(d) => {
                accepted();
                prop_assert_eq!(CalendarDuration::parse(&d.to_string()), Ok(d));
                prop_assert_eq!(fixed.unwrap(), d.approximate());
                for t in &times {
                    let _ = d.before(t);
                }
            }
        }
        Ok(())
    });
}

/// Schedules: the friendly forms with hostile words, and cron fields from a hostile alphabet.
fn schedule_text() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "daily",
        "hourly",
        "weekly",
        "monthly",
        "every",
        "on",
        "at",
        "sunday",
        "su",
        "s",
        "a€",
        "€€",
        "é",
        "1",
        "28",
        "29",
        "0",
        "24h",
        "0h",
        "5h",
        "-6h",
        "99999999999h",
        "h",
        "02:00",
        "24:00",
        "23:60",
        "-1:00",
        "2:3",
        ":",
        "99999999999:00",
    ]);
    let field = prop::sample::select(vec![
        "*",
        "*/0",
        "*/1",
        "*/7",
        "0",
        "59",
        "60",
        "23",
        "24",
        "31",
        "32",
        "2",
        "12",
        "13",
        "7",
        "8",
        "1-5",
        "5-1",
        "0-59/0",
        "1,2,3",
        "L",
        "5L",
        "W",
        "15W",
        "LW",
        "5#3",
        "5#6",
        "?",
        "SUN",
        "mon-fri",
        "JAN",
        "-1",
        "4294967296",
        "",
        ",",
        "/",
        "-",
    ]);
    prop_oneof![
        2 => prop::collection::vec(word, 1..6).prop_map(|w| w.join(" ")),
        4 => prop::collection::vec(field.clone(), 5..=5).prop_map(|f| f.join(" ")),
        1 => prop::collection::vec(field, 4..7).prop_map(|f| f.join(" ")),
        1 => "(?s).{0,30}",
    ]
}

#[test]
fn schedules() {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let ends = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap(),
    ];
    // Impossible dates are refused up front: February 30th, April 31st.
    for text in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2 *"] {
        assert!(Schedule::from_str(text).is_err(), "{text} never runs");
    }
    fuzz("schedule", 4000, schedule_text(), |text| {
        match Schedule::from_str(&text) {
            Err(e) => one_line("Schedule::from_str", &e.to_string())?,
            Ok(s) => {
                accepted();
                prop_assert_eq!(s.to_string(), text.clone());
                let next = s.next_after(now);
                if let Some(n) = next {
                    prop_assert!(n > now, "{text}: next run {n} is not after {now}");
                }
                if let Some(p) = s.last_at_or_before(now) {
                    prop_assert!(p <= now, "{text}: last run {p} is after {now}");
                }
                for t in ends {
                    let _ = (s.next_after(t), s.last_at_or_before(t));
                }
                let _ = s.max_interval();
            }
        }
        Ok(())
    });
}

#[test]
fn keep_counts() {
    fuzz(
        "keep count",
        10_000,
        prop_oneof![
            "[ ]?-?[0-9]{0,12}[ ]?",
            Just("unlimited".to_string()),
            Just(" -1 ".to_string()),
            "(?s).{0,16}"
        ],
        |text| {
            match parse_keep_count(&text) {
                Err(e) => one_line("parse_keep_count", &e.to_string())?,
                Ok(n) => {
                    accepted();
                    let t = text.trim();
                    prop_assert!(
                        (n == UNLIMITED && (t == "unlimited" || t == "-1"))
                            || t.trim_start_matches('0').parse::<u32>().unwrap_or(0) == n,
                        "{text:?} parsed as {n}"
                    );
                }
            }
            Ok(())
        },
    );
}

/// The cases the fuzzing found, kept as plain regressions.
#[test]
fn found_by_fuzzing() {
    // A day name cut inside a multi-byte character panicked (byte slicing).
    let Err(e) = Schedule::from_str("weekly on a\u{20ac} at 03:00") else {
        panic!("accepted a day cut inside a character");
    };
    assert!(e.to_string().contains("unknown day"), "{e}");
    // A value with a newline, echoed by the TOML error, broke the one-line error.
    let text = GOOD.replace("kind = \"postgres\"", "kind = '''\nmulti\n'''");
    let e = Config::parse("bulwark.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && e.contains("multi\\n"), "{e}");
    let Err(e) = Schedule::from_str("daily\nat 25:00") else {
        panic!("accepted 25:00");
    };
    assert!(!e.to_string().contains('\n'), "{e}");
}
