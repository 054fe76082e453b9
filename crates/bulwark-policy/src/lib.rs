//! Bulwark's retention policy engine.
//!
//! This crate decides *which snapshots to keep*; it never reads or deletes
//! anything. Everything here is a pure function of its inputs (the snapshot
//! list, the rules and an explicit `now`), so the same inputs always produce
//! the same plan and every decision can be unit- and property-tested.
//!
//! * [`retention`] — restic-compatible `forget` rules ([`retention::KeepRules`])
//!   and the planner ([`retention::plan`]), plus legal/contract holds.
//! * [`group`] — splitting snapshots into independent histories
//!   (restic's `--group-by host,paths`) before applying the rules per group.
//! * [`duration`] — the `30d` / `12h` / `1y6m` duration syntax shared with the
//!   configuration.

pub mod commitments;
pub mod compliance;
pub mod config;
pub mod duration;
pub mod group;
pub mod retention;
pub mod schedule;

pub use duration::{CalendarDuration, DurationError, parse_duration};

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
pub use group::{Group, GroupBy, GroupKey, group_by};
pub use retention::{
    Candidate, Decision, Hold, KeepRules, PlanError, UNLIMITED, WithinReference, plan,
};
