//! `report.html`: the report as one self-contained page (inline style sheet and SVG charts, no
//! script, nothing fetched) that prints cleanly. Every figure links to the ledger events behind
//! it (`#event-SEQ`), listed at the end; verdicts carry `data-verdict` attributes so a page can
//! be compared with `report.json` by machine.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts;
use super::model::{EventRef, Finding, Report, Section, Table};

const STYLE: &str = r#"
:root { --met: #1a7f37; --risk: #b35900; --breach: #c62828; --info: #5c6370; --ink: #1d2330; --muted: #5c6370; --line: #d8dce3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0 auto; padding: 24px; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 2px solid var(--ink); padding-bottom: 3px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; font-size: 13px; }
th { background: #eef0f4; font-weight: 600; }
.verdict { display: inline-block; padding: 0 8px; border-radius: 9px; color: #fff; font-size: 12px; font-weight: 600; white-space: nowrap; }
.met { background: var(--met); } .at_risk { background: var(--risk); } .breached { background: var(--breach); } .informational { background: var(--info); }
.muted, figcaption { color: var(--muted); font-size: 12px; } .empty { color: var(--muted); font-style: italic; }
blockquote { margin: 6px 0; padding: 4px 10px; border-left: 3px solid var(--line); color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; } dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
figure.chart { margin: 8px 0; } figure.chart svg { width: 100%; max-width: 720px; border: 1px solid var(--line); }
svg .axis { stroke: #8a919c; } svg .limit { stroke: var(--breach); stroke-dasharray: 5 4; }
svg .series { fill: none; stroke: #2f6fde; stroke-width: 1.5; } svg .tick { font-size: 10px; fill: var(--muted); }
svg .bar.pass { fill: var(--met); } svg .bar.fail { fill: var(--breach); }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; word-break: break-all; }
a { color: #2f6fde; text-decoration: none; } .box { border: 1px solid var(--line); padding: 8px 12px; margin: 10px 0; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; } a { color: inherit; } }
"#;

/// Tables longer than this fold away on screen (the rows are all in `report.json`).
const FOLD_ROWS: usize = 150;
/// Links shown per cell before "and N more".
const MAX_LINKS: usize = 12;

fn badge(f: Finding) -> Markup {
    html! { span class=(format!("verdict {}", f.word())) data-verdict=(f.word()) { (f.word().replace('_', " ")) } }
}

fn links(events: &[EventRef]) -> Markup {
    html! {
        @for e in events.iter().take(MAX_LINKS) {
            a href=(format!("#event-{}", e.seq)) { "#" (e.seq) } " "
        }
        @if events.len() > MAX_LINKS {
            span.muted { "and " (events.len() - MAX_LINKS) " more" }
        }
    }
}

fn table(t: &Table) -> Markup {
    let body = html! {
        table {
            thead { tr { @for c in &t.columns { th { (c) } } th { "" } th { "events" } } }
            tbody {
                @for r in &t.rows {
                    tr {
                        @for c in &r.cells { td { (c) } }
                        td { @if let Some(v) = r.verdict { (badge(v)) } }
                        td { (links(&r.events)) }
                    }
                }
            }
        }
    };
    html! {
        h3 { (t.title) }
        @if t.rows.is_empty() {
            p.empty { "none" }
        } @else if t.rows.len() > FOLD_ROWS {
            details { summary { (t.rows.len()) " rows (all of them in report.json)" } (body) }
        } @else {
            (body)
        }
    }
}

fn section(s: &Section) -> Markup {
    html! {
        section id=(s.id) {
            h2 { (s.title) " " (badge(s.verdict)) }
            blockquote { (s.commitment) }
            dl.facts {
                dt { "Target" } dd { (s.target) }
                dt { "Measured" } dd { (s.measured) }
                dt { "Verdict" } dd { (badge(s.verdict)) " " (s.reason) }
                dt { "Maps to" } dd {
                    "policy " (s.mapping.policy.join(", "))
                    " · SOC 2 " (s.mapping.soc2.join(", "))
                    " · ISO/IEC 27001:2022 " (s.mapping.iso27001.join(", "))
                }
            }
            @if !s.subjects.is_empty() {
                table {
                    thead { tr { th { "" } th { "verdict" } th { "target" } th { "measured" } th { "reason" } th { "events" } } }
                    tbody {
                        @for x in &s.subjects {
                            tr {
                                td { strong { (x.name) } }
                                td { (badge(x.verdict)) }
                                td { (x.target) }
                                td { (x.measured) }
                                td { (x.reason) }
                                td { (links(&x.events)) }
                            }
                        }
                    }
                }
            }
            @for c in &s.charts { (charts::render(c)) }
            @for t in &s.tables { (table(t)) }
        }
    }
}

pub fn render(r: &Report) -> String {
    let title = format!(
        "BCP/DR evidence {} to {}",
        r.period.from.format("%Y-%m-%d %H:%M"),
        r.period.to.format("%Y-%m-%d %H:%M UTC")
    );
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) " " (badge(r.verdict)) }
                dl.facts {
                    dt { "Generated" } dd { (r.generated_at.format("%Y-%m-%d %H:%M:%S UTC")) " on " (r.host) }
                    dt { "Policy file" } dd { (r.policy_file.path) " " code { (r.policy_file.hash) } }
                    dt { "Ledger" } dd { (badge(r.ledger.verdict)) " " (r.ledger.reason) }
                    dt { "Signed by" } dd { code { (r.signing_key) } }
                }
                div.box {
                    strong { "Checking this pack. " }
                    "Every file is listed with its SHA-256 in MANIFEST, which MANIFEST.sig signs with Ed25519. With standard tools: "
                    code { "sha256sum -c MANIFEST" } ", then "
                    code { "sed -n 's/^signature: //p' MANIFEST.sig | base64 -d > sig.bin" } " and "
                    code { "openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in MANIFEST -sigfile sig.bin" }
                    " with the signer's public key obtained independently. events.jsonl holds the period's ledger events; each line's id is the BLAKE3 hash of its event text, which names the id before it (chain-proof.json)."
                }
                h2 { "Contents and mapping" }
                table {
                    thead { tr { th { "section" } th { "verdict" } th { "policy" } th { "SOC 2 TSC" } th { "ISO/IEC 27001:2022" } } }
                    tbody {
                        @for s in &r.sections {
                            tr {
                                td { a href=(format!("#{}", s.id)) { (s.title) } }
                                td { (badge(s.verdict)) }
                                td { (s.mapping.policy.join(", ")) }
                                td { (s.mapping.soc2.join(", ")) }
                                td { (s.mapping.iso27001.join(", ")) }
                            }
                        }
                    }
                }
                @for s in &r.sections { (section(s)) }
                section id="chain" {
                    h2 { "Chain proof" }
                    dl.facts {
                        dt { "Before the first event" } dd { "seq " (r.chain.before.seq) " " code { (r.chain.before.id) } }
                        dt { "First event" } dd { @if let Some(f) = &r.chain.first { "seq " (f.seq) " " code { (f.id) } } @else { "none" } }
                        dt { "Last event" } dd { @if let Some(l) = &r.chain.last { "seq " (l.seq) " " code { (l.id) } } @else { "none" } }
                        dt { "Events" } dd { (r.chain.events) " in events.jsonl" }
                        dt { "Ledger head" } dd { "seq " (r.chain.ledger_head.seq) " " code { (r.chain.ledger_head.id) } }
                    }
                }
                section id="events" {
                    h2 { "Events cited" }
                    table {
                        thead { tr { th { "seq" } th { "started" } th { "kind" } th { "dataset" } th { "repository" } th { "ok" } th { "summary" } th { "id" } } }
                        tbody {
                            @for e in &r.events {
                                tr id=(format!("event-{}", e.seq)) {
                                    td { (e.seq) }
                                    td { (e.started.format("%Y-%m-%d %H:%M:%S")) }
                                    td { (e.kind) }
                                    td { (e.dataset.as_deref().unwrap_or("")) }
                                    td { (e.repository.as_deref().unwrap_or("")) }
                                    td { (if e.ok { "yes" } else { "no" }) }
                                    td { (e.summary) }
                                    td.mono { (e.id) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}
