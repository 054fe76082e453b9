//! Progress on a terminal: one bar per phase a job reports, on stderr; nothing at all when stderr
//! is not a terminal or `--json`/`-q` is given (then the job gets `bulwark_ops::Silent`).
//!
//! A phase without a known total is a spinner with the amount and rate. A backup scans its paths
//! ahead ([`Progress::wants_totals`]); once the scan has its total, the spinner becomes a bar with
//! percent, files done of the total, rate, ETA and the file being read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bulwark_ops::{Counter, Progress, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars;

struct Bar {
    bar: ProgressBar,
    label: String,
    unit: Unit,
    items_done: AtomicU64,
    /// The number of items scanned ahead; 0 until known.
    items_total: AtomicU64,
}

impl Bar {
    fn show_items(&self) {
        let (done, total) = (
            self.items_done.load(Ordering::Relaxed),
            self.items_total.load(Ordering::Relaxed),
        );
        let files = |n: u64| if n == 1 { "file" } else { "files" };
        self.bar.set_prefix(if total > 0 {
            format!("{done}/{total} {}", files(total))
        } else {
            format!("{done} {}", files(done))
        });
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

fn bar_style(label: &str, unit: Unit) -> ProgressStyle {
    style(&match unit {
        Unit::Bytes => format!(
            "{label} [{{bar:30}}] {{percent}}% {{bytes}}/{{total_bytes}} {{prefix}} ({{bytes_per_sec}}, ETA {{eta}}) {{wide_msg}}"
        ),
        Unit::Items => format!("{label} [{{bar:30}}] {{pos}}/{{len}} (ETA {{eta}}) {{wide_msg}}"),
    })
}

impl Counter for Bar {
    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    fn set_total(&self, amount: u64, items: u64) {
        self.items_total.store(items, Ordering::Relaxed);
        // What was done before the scan finished may already exceed an estimate.
        self.bar.set_length(amount.max(self.bar.position()));
        self.bar.set_style(bar_style(&self.label, self.unit));
        self.show_items();
    }

    fn item_done(&self) {
        self.items_done.fetch_add(1, Ordering::Relaxed);
        self.show_items();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Counter> {
        let spinner = match unit {
            Unit::Bytes => {
                format!("{{spinner}} {label} {{bytes}} {{prefix}} ({{bytes_per_sec}}) {{wide_msg}}")
            }
            Unit::Items => format!("{{spinner}} {label} {{pos}} {{wide_msg}}"),
        };
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(
            match total {
                Some(_) => bar_style(label, unit),
                None => style(&spinner),
            },
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar {
            bar,
            label: label.to_string(),
            unit,
            items_done: AtomicU64::new(0),
            items_total: AtomicU64::new(0),
        })
    }

    fn should_stop(&self) -> bool {
        crate::signals::stop_requested()
    }

    fn wants_totals(&self) -> bool {
        true
    }
}
