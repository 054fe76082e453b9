//! What a job tells its front-end while it works. A job knows what it counts (bytes restored,
//! packs checked); the front-end decides how to show it: a bar on a terminal, the state of a job
//! in the daemon, or nothing at all ([`Silent`]). Jobs never draw anything themselves.

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

/// A source of counters, one per phase of a job, and the front-end's wish to stop.
pub trait Progress: Send + Sync {
    /// A new counter for the phase `label`, with its total when known.
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Counter>;

    /// Whether the job should stop at its next safe point (a signal, a daemon shutting down, a
    /// lease lost). A stopped job returns [`crate::Error::Interrupted`]: nothing partial is
    /// visible, and whatever it stored is reused by the next run.
    fn should_stop(&self) -> bool {
        false
    }

    /// Whether totals are worth their cost: a terminal that shows a bar says yes, and a backup
    /// then scans its paths ahead (one more `lstat` per entry) to tell the counter its total.
    fn wants_totals(&self) -> bool {
        false
    }
}

/// One phase's count. Dropping it ends the phase.
pub trait Counter: Send + Sync {
    fn inc(&self, n: u64);
    /// What is being worked on now (a file name, say).
    fn set_message(&self, _message: &str) {}
    /// The phase's total became known (scanned ahead): `amount` in the counter's unit, and the
    /// number of items (files) it is made of.
    fn set_total(&self, _amount: u64, _items: u64) {}
    /// One more item (a file) is done.
    fn item_done(&self) {}
}

/// No progress at all.
pub struct Silent;

struct Nothing;

impl Counter for Nothing {
    fn inc(&self, _n: u64) {}
}

impl Progress for Silent {
    fn start(&self, _label: &str, _unit: Unit, _total: Option<u64>) -> Box<dyn Counter> {
        Box::new(Nothing)
    }
}
