//! The policy as code: `bulwark.toml` ([`config`]), whether it can keep the BCP/DR policy's
//! commitments ([`commitments`]), when work is due ([`due`], [`schedule`]), which snapshots to
//! keep ([`retention`], [`group`]) and whether each commitment is met ([`compliance`]).
//!
//! Everything here is a pure function of its inputs (the configuration text, facts gathered by
//! the caller and an explicit `now`): this crate reads no file, opens no repository and looks at
//! no clock, so the same inputs always give the same decision and every decision can be unit-
//! and property-tested.

pub mod commitments;
pub mod compliance;
pub mod config;
pub mod due;
pub mod duration;
pub mod evidence;
pub mod group;
pub mod retention;
pub mod schedule;
pub mod size;

pub use duration::{CalendarDuration, DurationError, human, parse_duration};
pub use group::{Group, GroupBy, GroupKey, group_by};
pub use retention::{
    Candidate, Decision, Hold, KeepRules, PlanError, UNLIMITED, WithinReference, plan,
};
pub use size::{human_size, parse_size};
