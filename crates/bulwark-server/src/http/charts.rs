//! Charts as SVG drawn on the server: no script, nothing fetched, readable when printed.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::view::{ExposurePoint, RestoreTestPoint, SnapshotPoint};

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

fn x_of(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let span = (to - from).num_seconds().max(1) as f64;
    LEFT + (t - from).num_seconds() as f64 / span * (W - LEFT - 8.0)
}

fn hours(s: f64) -> String {
    if s >= 48.0 * 3600.0 {
        format!("{:.0}d", s / 86_400.0)
    } else if s >= 3600.0 {
        format!("{:.0}h", s / 3600.0)
    } else {
        format!("{:.0}m", s / 60.0)
    }
}

fn axis(from: DateTime<Utc>, to: DateTime<Utc>) -> Markup {
    html! {
        line x1=(LEFT) y1=(H - BOTTOM) x2=(W - 8.0) y2=(H - BOTTOM) class="axis" {}
        text x=(LEFT) y=(H - 6.0) class="tick" { (from.format("%Y-%m-%d")) }
        text x=(W - 8.0) y=(H - 6.0) class="tick" text-anchor="end" { (to.format("%Y-%m-%d")) }
    }
}

/// The age of the newest backup over time, against the RPO.
pub fn exposure(points: &[ExposurePoint], rpo_s: f64, label: &str) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.empty { "no history yet" } };
    };
    let (from, to) = (first.time, last.time);
    let top = points
        .iter()
        .filter_map(|p| p.seconds)
        .fold(rpo_s * 1.25, f64::max);
    let y_of = |s: f64| H - BOTTOM - s / top * (H - BOTTOM - TOP);
    let mut path = String::new();
    for p in points {
        match p.seconds {
            Some(s) => {
                let cmd = if path.is_empty() || path.ends_with(' ') {
                    'M'
                } else {
                    'L'
                };
                path += &format!("{cmd}{:.1},{:.1} ", x_of(p.time, from, to), y_of(s));
            }
            None => path.clear(),
        }
    }
    let rpo_y = y_of(rpo_s);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            title { (label) }
            (axis(from, to))
            line x1=(LEFT) y1=(rpo_y) x2=(W - 8.0) y2=(rpo_y) class="limit" {}
            text x=(LEFT - 4.0) y=(rpo_y + 4.0) class="tick" text-anchor="end" { "RPO " (hours(rpo_s)) }
            text x=(LEFT - 4.0) y=(H - BOTTOM) class="tick" text-anchor="end" { "0" }
            path d=(path.trim()) class="series" {}
        }
    }
}

/// Restore-test durations as bars (failed ones marked), against the RTO.
pub fn restore_tests(tests: &[RestoreTestPoint], rto_s: f64, label: &str) -> Markup {
    if tests.is_empty() {
        return html! { p.empty { "no restore test yet" } };
    }
    let top = tests.iter().map(|t| t.duration_s).fold(rto_s, f64::max) * 1.1;
    let y_of = |s: f64| H - BOTTOM - s / top * (H - BOTTOM - TOP);
    let slot = (W - LEFT - 8.0) / tests.len() as f64;
    let bar = (slot * 0.7).max(2.0);
    let rto_y = y_of(rto_s);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            title { (label) }
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W - 8.0) y2=(H - BOTTOM) class="axis" {}
            line x1=(LEFT) y1=(rto_y) x2=(W - 8.0) y2=(rto_y) class="limit" {}
            text x=(LEFT - 4.0) y=(rto_y + 4.0) class="tick" text-anchor="end" { "RTO " (hours(rto_s)) }
            @for (i, t) in tests.iter().enumerate() {
                @let y = y_of(t.duration_s).min(H - BOTTOM - 2.0);
                rect x=(format!("{:.1}", LEFT + i as f64 * slot + (slot - bar) / 2.0)) y=(format!("{y:.1}"))
                     width=(format!("{bar:.1}")) height=(format!("{:.1}", H - BOTTOM - y))
                     class=(if t.passed { "bar pass" } else { "bar fail" }) {
                    title { (t.time.format("%Y-%m-%d %H:%M UTC")) ": " (if t.passed { "passed" } else { "FAILED" }) " in " (format!("{:.1}s", t.duration_s)) }
                }
            }
        }
    }
}

/// Snapshots over time, one row per repository.
pub fn timeline(
    snapshots: &[SnapshotPoint],
    repositories: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let row = 28.0;
    let h = BOTTOM + row * repositories.len().max(1) as f64 + TOP;
    html! {
        svg.chart viewBox=(format!("0 0 {W} {h}")) role="img" aria-label="snapshot timeline" {
            title { "snapshots over the last 30 days" }
            @for (r, name) in repositories.iter().enumerate() {
                @let y = TOP + row * r as f64 + row / 2.0;
                text x=(LEFT - 4.0) y=(y + 4.0) class="tick" text-anchor="end" { (name) }
                line x1=(LEFT) y1=(y) x2=(W - 8.0) y2=(y) class="grid" {}
                @for s in snapshots.iter().filter(|s| &s.repository == name) {
                    circle cx=(format!("{:.1}", x_of(s.time, from, to))) cy=(y) r="3.5" class="dot" {
                        title { (s.time.format("%Y-%m-%d %H:%M UTC")) " " (&s.id[..8]) }
                    }
                }
            }
            line x1=(LEFT) y1=(h - BOTTOM) x2=(W - 8.0) y2=(h - BOTTOM) class="axis" {}
            text x=(LEFT) y=(h - 6.0) class="tick" { (from.format("%Y-%m-%d")) }
            text x=(W - 8.0) y=(h - 6.0) class="tick" text-anchor="end" { (to.format("%Y-%m-%d")) }
        }
    }
}
