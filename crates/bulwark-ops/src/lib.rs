//! Bulwark's jobs, each a function over an open repository: backup, restore, check, repair and
//! browsing. The CLI (and later the server) parse input, call these, and render the reports.

pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
pub mod database;
pub mod forget;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod replica;
pub mod restore;
pub mod restore_test;
pub mod run;
pub mod status;

pub use progress::Progress;
