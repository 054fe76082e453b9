//! Progress on a terminal; nothing at all when output is piped or JSON is asked for.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// A byte counter with an optional known total.
    pub fn bytes(enabled: bool, total: Option<u64>, label: &str) -> Progress {
        Self::make(
            enabled,
            total,
            label,
            "{bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            "{bytes} ({bytes_per_sec}) {msg}",
        )
    }

    /// A count of items with an optional known total.
    pub fn items(enabled: bool, total: Option<u64>, label: &str) -> Progress {
        Self::make(enabled, total, label, "{pos}/{len} ({eta})", "{pos} {msg}")
    }

    fn make(
        enabled: bool,
        total: Option<u64>,
        label: &str,
        with_total: &str,
        without: &str,
    ) -> Progress {
        if !enabled {
            return Progress::hidden();
        }
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
        Progress { bar: Some(bar) }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn set_message(&self, msg: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
