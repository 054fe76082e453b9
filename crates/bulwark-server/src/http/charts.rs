//! Charts as SVG drawn on the server: no script, nothing fetched, readable when printed. Every
//! chart has a title for screen readers, labelled axes, and marks that do not rely on colour
//! alone (limits are dashed, failures carry a cross), so a grey print still tells them apart.

use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};

use crate::view::{ExposurePoint, ReplicaLag, RestoreTestPoint, SnapshotPoint};

const W: f64 = 760.0;
const H: f64 = 200.0;
/// The plot area inside the chart.
const LEFT: f64 = 64.0;
const RIGHT: f64 = W - 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = H - 28.0;

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// A duration in the unit people would say it in: `40ms`, `1.2s`, `12s`, `3m`, `5h`, `3d`.
pub fn span(seconds: f64) -> String {
    let s = seconds.abs();
    if s == 0.0 {
        "0s".into()
    } else if s < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else if s < 10.0 && seconds.fract() != 0.0 {
        format!("{seconds:.1}s")
    } else if s < 120.0 {
        format!("{seconds:.0}s")
    } else if s < 3600.0 {
        format!("{:.0}m", seconds / 60.0)
    } else if s < 3.0 * 86_400.0 {
        let h = seconds / 3600.0;
        if h.fract().abs() < 0.05 || s >= 36_000.0 {
            format!("{h:.0}h")
        } else {
            format!("{h:.1}h")
        }
    } else {
        format!("{:.0}d", seconds / 86_400.0)
    }
}

fn x_of(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let whole = (to - from).num_seconds().max(1) as f64;
    let at = (t - from).num_seconds() as f64 / whole;
    LEFT + at.clamp(0.0, 1.0) * (RIGHT - LEFT)
}

/// Midnights between `from` and `to`, a week apart over a month, a day apart over a week.
fn day_ticks(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let days = (to - from).num_days();
    let step = if days > 14 {
        7
    } else if days > 3 {
        1
    } else {
        return vec![from, to];
    };
    let mut t = (from + Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut out = Vec::new();
    while t <= to {
        out.push(t);
        t += Duration::days(step);
    }
    out
}

/// The time axis along the bottom of the plot area, with a grid line per tick.
fn time_axis(from: DateTime<Utc>, to: DateTime<Utc>, bottom: f64) -> Markup {
    html! {
        @for t in day_ticks(from, to) {
            @let x = x_of(t, from, to);
            line.grid x1=(f(x)) y1=(f(TOP)) x2=(f(x)) y2=(f(bottom)) {}
            text.tick x=(f(x)) y=(f(bottom + 16.0)) text-anchor="middle" { (t.format("%b %d")) }
        }
        line.axis x1=(f(LEFT)) y1=(f(bottom)) x2=(f(RIGHT)) y2=(f(bottom)) {}
    }
}

/// A value axis of the plot area: grid lines and labels at `ticks`.
fn value_axis(ticks: &[(f64, String)]) -> Markup {
    html! {
        @for (y, label) in ticks {
            line.grid x1=(f(LEFT)) y1=(f(*y)) x2=(f(RIGHT)) y2=(f(*y)) {}
            text.tick x=(f(LEFT - 6.0)) y=(f(y + 4.0)) text-anchor="end" { (label) }
        }
        line.axis x1=(f(LEFT)) y1=(f(TOP)) x2=(f(LEFT)) y2=(f(BOTTOM)) {}
    }
}

/// A dashed horizontal limit with its name at the right end.
fn limit(y: f64, label: &str) -> Markup {
    html! {
        line.limit x1=(f(LEFT)) y1=(f(y)) x2=(f(RIGHT)) y2=(f(y)) {}
        text.limit-label x=(f(RIGHT - 4.0)) y=(f(y - 5.0)) text-anchor="end" { (label) }
    }
}

/// Round `v` up to 1, 2 or 5 times a power of ten, in hours, for a readable axis step.
fn nice_hours(v: f64) -> f64 {
    let h = (v / 3600.0).max(1.0 / 60.0);
    let p = 10f64.powf(h.log10().floor());
    let m = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * p >= h)
        .unwrap_or(10.0);
    m * p * 3600.0
}

/// The age of the newest backup over time, against the RPO: a line that climbs until each
/// backup resets it; the part above the RPO is drawn in the breach colour.
pub fn exposure(points: &[ExposurePoint], rpo_s: f64, label: &str) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.empty { "no history yet" } };
    };
    let (from, to) = (first.time, last.time);
    let worst = points.iter().filter_map(|p| p.seconds).fold(0.0, f64::max);
    let step = nice_hours(worst.max(rpo_s * 1.2) / 4.0);
    let top = (worst.max(rpo_s * 1.2) / step).ceil() * step;
    let y_of = |s: f64| BOTTOM - s.min(top) / top * (BOTTOM - TOP);
    // Runs of known values; a gap (no backup yet) breaks the line.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for p in points {
        match p.seconds {
            Some(s) => runs
                .last_mut()
                .expect("a run")
                .push((x_of(p.time, from, to), y_of(s))),
            None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    runs.retain(|r| !r.is_empty());
    // Stretches without any backup yet, shaded.
    let mut nodata: Vec<(f64, f64)> = Vec::new();
    let mut gap: Option<f64> = None;
    for p in points {
        let x = x_of(p.time, from, to);
        match (p.seconds, gap) {
            (None, None) => gap = Some(x),
            (Some(_), Some(x0)) => {
                nodata.push((x0, x));
                gap = None;
            }
            _ => {}
        }
    }
    if let Some(x0) = gap {
        nodata.push((x0, RIGHT));
    }
    let line: String = runs
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let area: String = runs
        .iter()
        .map(|r| {
            let (x0, x1) = (r[0].0, r[r.len() - 1].0);
            let pts: Vec<String> = r.iter().map(|(x, y)| format!("L{x:.1},{y:.1}")).collect();
            format!(
                "M{x0:.1},{BOTTOM:.1} {} L{x1:.1},{BOTTOM:.1} Z",
                pts.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let ticks: Vec<(f64, String)> = (0..=(top / step).round() as usize)
        .map(|i| {
            let v = i as f64 * step;
            (y_of(v), span(v))
        })
        .collect();
    let rpo_y = y_of(rpo_s);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            title { (label) }
            defs {
                clipPath #above-rpo { rect x=(f(LEFT)) y="0" width=(f(RIGHT - LEFT)) height=(f(rpo_y)) {} }
            }
            (value_axis(&ticks))
            (time_axis(from, to, BOTTOM))
            @for (x0, x1) in &nodata {
                rect.nodata x=(f(*x0)) y=(f(TOP)) width=(f((x1 - x0).max(1.0))) height=(f(BOTTOM - TOP)) {}
                @if x1 - x0 > 120.0 {
                    text.tick x=(f((x0 + x1) / 2.0)) y=(f(TOP + 16.0)) text-anchor="middle" { "no backup yet" }
                }
            }
            path.area d=(area) {}
            path.series d=(line) {}
            path.series.over d=(line) clip-path="url(#above-rpo)" {}
            // A lone point (one hour of history) has no line to draw.
            @for r in runs.iter().filter(|r| r.len() == 1) {
                circle class=(if r[0].1 < rpo_y { "point over" } else { "point" }) cx=(f(r[0].0)) cy=(f(r[0].1)) r="3" {}
            }
            (limit(rpo_y, &format!("RPO {}", span(rpo_s))))
        }
    }
}

/// The log-scale ticks between `lo` and `hi` seconds, with their labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, &'static str)> {
    [
        (0.001, "1ms"),
        (0.01, "10ms"),
        (0.1, "100ms"),
        (1.0, "1s"),
        (10.0, "10s"),
        (60.0, "1m"),
        (600.0, "10m"),
        (3600.0, "1h"),
        (36_000.0, "10h"),
        (86_400.0, "1d"),
        (864_000.0, "10d"),
    ]
    .into_iter()
    .filter(|(t, _)| *t >= lo && *t <= hi)
    .collect()
}

/// Restore-test durations as bars against the RTO, on a log scale (a test of a small sample
/// takes seconds, the RTO is hours: on a linear scale the bars would vanish). Failed tests are
/// red and marked with a cross.
pub fn restore_tests(tests: &[RestoreTestPoint], rto_s: f64, label: &str) -> Markup {
    if tests.is_empty() {
        return html! { p.empty { "no restore test yet" } };
    }
    let longest = tests.iter().map(|t| t.duration_s).fold(0.0, f64::max);
    let shortest = tests
        .iter()
        .map(|t| t.duration_s)
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    // A decade below the shortest test, so even that bar has a height.
    let lo = 10f64
        .powf(shortest.min(rto_s).max(0.01).log10().floor() - 1.0)
        .max(0.001);
    let hi = longest.max(rto_s) * 2.0;
    let y_of = |s: f64| {
        let at = (s.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
        BOTTOM - at.clamp(0.0, 1.0) * (BOTTOM - TOP)
    };
    let ticks: Vec<(f64, String)> = log_ticks(lo, hi)
        .into_iter()
        .map(|(t, label)| (y_of(t), label.to_string()))
        .collect();
    let slot = (RIGHT - LEFT) / tests.len() as f64;
    let bar = (slot * 0.6).clamp(2.0, 36.0);
    let (first, last) = (&tests[0], &tests[tests.len() - 1]);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            title { (label) }
            (value_axis(&ticks))
            line.axis x1=(f(LEFT)) y1=(f(BOTTOM)) x2=(f(RIGHT)) y2=(f(BOTTOM)) {}
            text.tick x=(f(LEFT)) y=(f(BOTTOM + 16.0)) { (first.time.format("%b %d %H:%M")) }
            @if tests.len() > 1 {
                text.tick x=(f(RIGHT)) y=(f(BOTTOM + 16.0)) text-anchor="end" { (last.time.format("%b %d %H:%M")) }
            }
            @for (i, t) in tests.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                @let y = y_of(t.duration_s).min(BOTTOM - 2.0);
                g data-passed=(t.passed) {
                    title { (t.time.format("%Y-%m-%d %H:%M UTC")) ": " (if t.passed { "passed" } else { "FAILED" }) " in " (span(t.duration_s)) }
                    rect class=(if t.passed { "bar pass" } else { "bar fail" }) x=(f(x)) y=(f(y)) width=(f(bar)) height=(f(BOTTOM - y)) {}
                    @if !t.passed {
                        text.cross x=(f(x + bar / 2.0)) y=(f(y - 4.0)) text-anchor="middle" { "✗" }
                    }
                }
            }
            (limit(y_of(rto_s), &format!("RTO {}", span(rto_s))))
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
    let row = 30.0;
    let bottom = TOP + row * repositories.len().max(1) as f64;
    let h = bottom + 28.0;
    html! {
        svg.chart viewBox=(format!("0 0 {W} {h}")) role="img" aria-label="snapshots per repository over the last 30 days" {
            title { "snapshots per repository over the last 30 days" }
            (time_axis(from, to, bottom))
            @for (r, name) in repositories.iter().enumerate() {
                @let y = TOP + row * r as f64 + row / 2.0;
                text.tick x=(f(LEFT - 6.0)) y=(f(y + 4.0)) text-anchor="end" { (name) }
                line.lane x1=(f(LEFT)) y1=(f(y)) x2=(f(RIGHT)) y2=(f(y)) {}
                @for s in snapshots.iter().filter(|s| &s.repository == name) {
                    circle.dot cx=(f(x_of(s.time, from, to))) cy=(f(y)) r="4" {
                        title { (name) ": " (s.time.format("%Y-%m-%d %H:%M UTC")) " " (s.id.get(..8).unwrap_or(&s.id)) }
                    }
                }
            }
        }
    }
}

/// How far each replica is behind the primary, against the RPO.
pub fn replica_lag(replicas: &[ReplicaLag], rpo_s: f64) -> Markup {
    let row = 28.0;
    let bottom = TOP + row * replicas.len().max(1) as f64;
    let h = bottom + 28.0;
    let worst = replicas
        .iter()
        .filter_map(|r| r.lag_seconds)
        .fold(0.0, f64::max);
    let top = worst.max(rpo_s) * 1.15;
    let x_of = |s: f64| LEFT + s.min(top) / top * (RIGHT - LEFT);
    let rpo_x = x_of(rpo_s);
    let step = nice_hours(top / 4.0);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {h}")) role="img" aria-label="replica lag against the RPO" {
            title { "how far each replica is behind the primary, against the RPO" }
            @for i in 0..=((top / step).floor() as usize) {
                @let x = x_of(i as f64 * step);
                line.grid x1=(f(x)) y1=(f(TOP)) x2=(f(x)) y2=(f(bottom)) {}
                text.tick x=(f(x)) y=(f(bottom + 16.0)) text-anchor="middle" { (span(i as f64 * step)) }
            }
            line.axis x1=(f(LEFT)) y1=(f(bottom)) x2=(f(RIGHT)) y2=(f(bottom)) {}
            @for (i, r) in replicas.iter().enumerate() {
                @let y = TOP + row * i as f64 + 6.0;
                text.tick x=(f(LEFT - 6.0)) y=(f(y + 12.0)) text-anchor="end" { (r.repository) }
                @match r.lag_seconds {
                    Some(lag) => {
                        rect class=(if lag > rpo_s { "bar fail" } else { "bar pass" }) x=(f(LEFT)) y=(f(y)) width=(f((x_of(lag) - LEFT).max(2.0))) height=(f(row - 12.0)) {
                            title { (r.repository) ": " (span(lag)) " behind" }
                        }
                        text.tick x=(f(x_of(lag) + 6.0)) y=(f(y + 12.0)) { (span(lag)) }
                    }
                    None => { text.tick x=(f(LEFT + 6.0)) y=(f(y + 12.0)) { "no copy yet" } }
                }
            }
            line.limit x1=(f(rpo_x)) y1=(f(TOP - 6.0)) x2=(f(rpo_x)) y2=(f(bottom)) {}
            text.limit-label x=(f(rpo_x + 4.0)) y=(f(TOP + 2.0)) { "RPO " (span(rpo_s)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(0.0), "0s");
        assert_eq!(span(0.042), "42ms");
        assert_eq!(span(1.42), "1.4s");
        assert_eq!(span(1.0), "1s");
        assert_eq!(span(42.0), "42s");
        assert_eq!(span(600.0), "10m");
        assert_eq!(span(3600.0), "1h");
        assert_eq!(span(48.0 * 3600.0), "48h");
        assert_eq!(span(4.0 * 3600.0), "4h");
        assert_eq!(span(5400.0 * 2.0), "3h");
        assert_eq!(span(9000.0), "2.5h");
        assert_eq!(span(86_400.0 * 30.0), "30d");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_hours(3600.0 * 24.0 * 1.2 / 4.0), 10.0 * 3600.0);
        assert_eq!(nice_hours(3600.0 * 1.5), 2.0 * 3600.0);
        assert_eq!(nice_hours(3600.0 * 3.0), 5.0 * 3600.0);
    }

    #[test]
    fn a_month_has_weekly_ticks_at_midnight() {
        let to = "2026-03-31T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let ticks = day_ticks(to - Duration::days(30), to);
        assert_eq!(ticks.len(), 5);
        assert!(
            ticks
                .iter()
                .all(|t| t.format("%H:%M").to_string() == "00:00")
        );
        assert!(ticks.windows(2).all(|w| w[1] - w[0] == Duration::days(7)));
    }
}
