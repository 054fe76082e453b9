//! SIGINT and SIGTERM for every command but `serve` (the daemon handles its own).
//!
//! The first signal asks the running job to stop at its next safe point: the CLI's progress
//! reports it through `Progress::should_stop`, the job returns `Interrupted`, its lock guards
//! drop (removing the lock objects) and the process exits 130 after SIGINT, 143 after SIGTERM
//! (128 + the signal, what a shell reports; restic 0.14 exits 130 on SIGINT and dies with 143 on
//! SIGTERM leaving its lock, restic 0.17 cleans up on both and exits 130). A command with no
//! safe points (listing, unlocking, ...) and a second signal quit at once, removing the locks
//! this process holds first.

use std::sync::atomic::{AtomicI32, Ordering};

use bulwark_ops::{Counter, Progress, Silent, Unit};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first stopping signal received, 0 until then.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Handle SIGINT and SIGTERM from now on. `stoppable`: the command runs a job that stops at
/// safe points; otherwise the first signal quits at once.
pub fn install(stoppable: bool) {
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle SIGINT/SIGTERM: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let first = RECEIVED
                .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if first && stoppable {
                eprintln!(
                    "\n{} received: stopping at the next safe point and releasing the repository lock (press Ctrl-C again to quit at once)",
                    name(signal)
                );
                continue;
            }
            let released = bulwark_repo::lock::release_all_held();
            eprintln!(
                "{} received: quitting at once{}",
                name(signal),
                match released {
                    0 => String::new(),
                    n => format!(" (released {n} repository lock{})", plural_s(n)),
                }
            );
            std::process::exit(exit_code());
        }
    });
}

fn plural_s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn name(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// Whether a stopping signal has arrived.
pub fn stop_requested() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The exit code of a command stopped by a signal: 128 + the first signal (130 before any).
pub fn exit_code() -> i32 {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => 128 + SIGINT,
        s => 128 + s,
    }
}

/// The name of the signal that stopped the command, for its error line.
pub fn received_name() -> &'static str {
    name(RECEIVED.load(Ordering::SeqCst))
}

/// No progress on screen, but a job still learns that it should stop.
pub struct StopOnly;

impl Progress for StopOnly {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Counter> {
        Silent.start(label, unit, total)
    }

    fn should_stop(&self) -> bool {
        stop_requested()
    }
}
