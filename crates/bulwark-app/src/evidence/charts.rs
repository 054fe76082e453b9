//! The report's charts, as inline SVG: no script, nothing fetched, readable on paper.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::model::{Chart, ChartKind};

const W: f64 = 720.0;
const H: f64 = 170.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

fn x_of(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let span = (to - from).num_seconds().max(1) as f64;
    LEFT + ((t - from).num_seconds() as f64 / span).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
}

fn short(s: f64) -> String {
    if s >= 48.0 * 3600.0 {
        format!("{:.0}d", s / 86_400.0)
    } else if s >= 3600.0 {
        format!("{:.0}h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{s:.0}s")
    }
}

pub fn render(c: &Chart) -> Markup {
    if c.points.is_empty() {
        return html! { p.empty { (c.title) ": nothing measured in the period" } };
    }
    let top = c
        .points
        .iter()
        .filter_map(|p| p.value_s)
        .fold(c.limit_s * 1.2, f64::max)
        .max(1.0);
    let y_of = |s: f64| H - BOTTOM - (s / top).clamp(0.0, 1.0) * (H - BOTTOM - TOP);
    let limit_y = y_of(c.limit_s);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(c.title) {
                title { (c.title) }
                line x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) class="axis" {}
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) class="axis" {}
                text x=(LEFT - 4.0) y=(H - BOTTOM) class="tick" text-anchor="end" { "0" }
                text x=(LEFT - 4.0) y=(TOP + 8.0) class="tick" text-anchor="end" { (short(top)) }
                line x1=(LEFT) y1=(format!("{limit_y:.1}")) x2=(W - RIGHT) y2=(format!("{limit_y:.1}")) class="limit" {}
                text x=(W - RIGHT) y=(format!("{:.1}", limit_y - 3.0)) class="tick" text-anchor="end" { (c.limit_label) }
                text x=(LEFT) y=(H - 6.0) class="tick" { (c.from.format("%Y-%m-%d")) }
                text x=(W - RIGHT) y=(H - 6.0) class="tick" text-anchor="end" { (c.to.format("%Y-%m-%d")) }
                @match c.kind {
                    ChartKind::Series => {
                        path class="series" d=(series_path(c, &y_of)) {}
                    }
                    ChartKind::Bars => {
                        @for p in &c.points {
                            @let x = x_of(p.time, c.from, c.to);
                            @let y = y_of(p.value_s.unwrap_or(0.0)).min(H - BOTTOM - 1.5);
                            rect x=(format!("{:.1}", x - 2.0)) y=(format!("{y:.1}")) width="4"
                                 height=(format!("{:.1}", H - BOTTOM - y))
                                 class=(if p.ok == Some(false) { "bar fail" } else { "bar pass" }) {
                                title { (p.time.format("%Y-%m-%d %H:%M UTC")) ": " (if p.ok == Some(false) { "FAILED" } else { "passed" }) " in " (short(p.value_s.unwrap_or(0.0))) }
                            }
                        }
                    }
                }
            }
            figcaption { (c.title) }
        }
    }
}

fn series_path(c: &Chart, y_of: &dyn Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in &c.points {
        match p.value_s {
            Some(v) => {
                d += &format!(
                    "{}{:.1},{:.1} ",
                    if pen_down { 'L' } else { 'M' },
                    x_of(p.time, c.from, c.to),
                    y_of(v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_string()
}
