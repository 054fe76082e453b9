//! The policy as code: `bulwark.toml` ([`config`]), whether it can keep the BCP/DR policy's
//! commitments ([`commitments`]), when work is due ([`due`], [`schedule`]), which snapshots to
//! keep ([`retention`], [`group`]) and whether each commitment is met ([`compliance`]); the
//! continuity commitments: business days ([`calendar`]), incident cadence and post-mortems
//! ([`incident`]), plan reviews and the topology they watch ([`review`]), set in [`continuity`].
//!
//! Everything here is a pure function of its inputs (the configuration text, facts gathered by
//! the caller and an explicit `now`): this crate reads no file, opens no repository and looks at
//! no clock, so the same inputs always give the same decision and every decision can be unit-
//! and property-tested.

mod bucket;
pub mod calendar;
pub mod commitments;
pub mod compliance;
pub mod config;
pub mod continuity;
pub mod due;
pub mod duration;
pub mod evidence;
pub mod group;
pub mod incident;
pub mod object_lock;
pub mod replication;
pub mod retention;
pub mod review;
pub mod schedule;
pub mod size;

pub use duration::{CalendarDuration, DurationError, human, parse_duration};

pub use group::{Group, GroupBy, GroupKey, group_by};
pub use retention::{
    Candidate, Decision, Hold, KeepRules, PlanError, UNLIMITED, WithinReference, plan,
};
pub use size::{human_size, parse_size};

/// `text` with control characters escaped: user input quoted in an error message (a TOML
/// value, a schedule) must not break it over several lines.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
