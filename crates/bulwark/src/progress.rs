//! Progress on a terminal: one bar per phase a job reports, on stderr; nothing at all when stderr
//! is not a terminal or `--json`/`-q` is given (then the job gets `bulwark_ops::Silent`).

use std::time::Duration;

use bulwark_ops::{Counter, Progress, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars;

struct Bar(ProgressBar);

impl Counter for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    fn set_message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Counter> {
        let (with_total, without) = match unit {
            Unit::Bytes => (
                "{bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                "{bytes} ({bytes_per_sec}) {msg}",
            ),
            Unit::Items => ("{pos}/{len} ({eta})", "{pos} {msg}"),
        };
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(&format!("{label} [{{bar:30}}] {with_total}"))
                        .expect("valid template")
                        .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(&format!("{{spinner}} {label} {without}"))
                    .expect("valid template"),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    }

    fn should_stop(&self) -> bool {
        crate::signals::stop_requested()
    }
}
