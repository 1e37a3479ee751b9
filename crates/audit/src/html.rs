//! A self-contained HTML report (no external assets, no script): journal
//! summaries, findings, and per case an inline SVG timeline with one lane
//! per agency, the custodian's band, events as dots, accepted handovers as
//! arrows between lanes, consent periods as bars, findings ringed in red.
//!
//! Elements carry classes (`lane`, `custody`, `event`, `handover`,
//! `consent`, `finding`) so tests and stylesheets can find them.

use std::fmt::Write;

use waymark_types::Timestamp;

use crate::finding::Severity;
use crate::report::Report;
use crate::timeline::CaseTimeline;

const W: f64 = 980.0;
const LEFT: f64 = 180.0;
const TOP: f64 = 34.0;
const LANE: f64 = 54.0;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the whole report as one HTML document.
pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(64 << 10);
    let status = if report.clean { "CLEAN" } else { "FAILED" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Waymark audit: {status}</title><style>{CSS}</style></head><body>\
         <h1>Waymark audit <span class=\"status {}\">{status}</span></h1>\
         <p>{} · schema {}</p>",
        status.to_lowercase(),
        esc(&report.directory),
        report.schema
    );
    h.push_str("<h2>Journals</h2><table><tr><th>agency</th><th>kind</th><th>verified</th><th>entries</th><th>checkpoints</th><th>cosignatures</th><th>signatures</th><th>root</th></tr>");
    for j in &report.journals {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&j.agency),
            esc(&j.kind),
            if j.verified { "ok" } else { "bad" },
            if j.verified { "yes" } else { "NO" },
            j.entries,
            j.checkpoints,
            j.cosignatures,
            j.signatures_checked,
            esc(&j.root[..j.root.len().min(16)])
        );
    }
    h.push_str("</table>");
    let _ = write!(h, "<h2>Findings ({})</h2>", report.findings.len());
    if report.findings.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>severity</th><th>rule</th><th>where</th><th>what</th></tr>");
        for f in &report.findings {
            let _ = write!(
                h,
                "<tr class=\"sev-{0}\"><td>{0}</td><td><code>{1}</code></td><td>{2}</td><td>{3}</td></tr>",
                f.severity.as_str(),
                esc(&f.rule),
                esc(&f.location.to_string()),
                esc(&f.message)
            );
        }
        h.push_str("</table>");
    }
    let agencies: Vec<String> = report.journals.iter().map(|j| j.agency.clone()).collect();
    for t in &report.timelines {
        let _ = write!(h, "<h2>Case <code>{}</code></h2>", esc(&t.case_id));
        h.push_str(&svg(t, &agencies));
        rows_table(&mut h, t);
    }
    h.push_str("</body></html>\n");
    h
}

fn rows_table(h: &mut String, t: &CaseTimeline) {
    h.push_str("<table class=\"rows\"><tr><th>time</th><th>agency</th><th>event</th><th>custodian after</th><th>basis</th><th>finding</th></tr>");
    for r in &t.rows {
        let to = r
            .recipient
            .as_ref()
            .map_or(String::new(), |x| format!(" → {}", esc(x)));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}{to}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            Timestamp::from_millis(r.at),
            esc(&r.agency),
            esc(&r.event),
            esc(r.custodian_after.as_deref().unwrap_or("-")),
            esc(&r.basis),
            esc(r.finding.as_ref().map_or("", |f| f.0.as_str()))
        );
    }
    h.push_str("</table>");
}

/// The SVG timeline of one case; `agencies` gives the lanes (agencies the
/// case mentions that have no export get a lane too).
pub fn svg(t: &CaseTimeline, agencies: &[String]) -> String {
    let mut lanes: Vec<String> = agencies.to_vec();
    for r in &t.rows {
        for a in std::iter::once(&r.agency).chain(r.recipient.iter()) {
            if !lanes.contains(a) {
                lanes.push(a.clone());
            }
        }
    }
    let lane_y = |a: &str| {
        let i = lanes.iter().position(|x| x == a).unwrap_or(0);
        TOP + LANE * (i as f64 + 0.5)
    };
    let times: Vec<i64> = t.rows.iter().map(|r| r.at).collect();
    let t0 = times.iter().copied().min().unwrap_or(0);
    let t1 = times.iter().copied().max().unwrap_or(0).max(t0 + 1);
    let span = (t1 - t0) as f64;
    let x = |ms: i64| LEFT + 10.0 + (ms.clamp(t0, t1) - t0) as f64 / span * (W - LEFT - 30.0);
    let height = TOP + LANE * lanes.len() as f64 + 12.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"custody timeline of case {}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#c2410c\"/></marker></defs>",
        esc(&t.case_id)
    );
    for k in 0..=4 {
        let ms = t0 + (t1 - t0) * k / 4;
        let date = Timestamp::from_millis(ms).to_string();
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{:.1}\" y=\"14\" text-anchor=\"{}\">{}</text>",
            x(ms),
            ["start", "middle", "middle", "middle", "end"][k as usize],
            esc(&date[..16.min(date.len())])
        );
    }
    for a in &lanes {
        let y = lane_y(a);
        let _ = write!(
            s,
            "<g class=\"lane\" data-agency=\"{0}\"><line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{1}\" y2=\"{y:.1}\"/>\
             <text x=\"8\" y=\"{2:.1}\">{0}</text></g>",
            esc(a),
            W - 10.0,
            y + 4.0
        );
    }
    // Custody bands: from each change of custodian to the next.
    let mut seg: Option<(String, i64)> = None;
    let mut bands = Vec::new();
    for r in &t.rows {
        if r.custodian_after.as_ref() != seg.as_ref().map(|x| &x.0) {
            if let Some((c, from)) = seg.take() {
                bands.push((c, from, r.at));
            }
            seg = r.custodian_after.clone().map(|c| (c, r.at));
        }
    }
    if let Some((c, from)) = seg {
        bands.push((c, from, t1));
    }
    for (c, from, to) in bands {
        let _ = write!(
            s,
            "<rect class=\"custody\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"8\"><title>custodian {}</title></rect>",
            x(from),
            lane_y(&c) - 4.0,
            (x(to) - x(from)).max(2.0),
            esc(&c)
        );
    }
    for c in &t.consents {
        let end = c
            .withdrawn_at
            .into_iter()
            .chain(c.until)
            .min()
            .unwrap_or(t1);
        let _ = write!(
            s,
            "<rect class=\"consent\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"5\"><title>consent {} in force from {}</title></rect>",
            x(c.from),
            lane_y(&c.recorded_by) + 9.0,
            (x(end) - x(c.from)).max(2.0),
            esc(&c.consent_id),
            Timestamp::from_millis(c.from)
        );
    }
    for hnd in &t.handovers {
        let _ = write!(
            s,
            "<line class=\"handover\" x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" marker-end=\"url(#arrow)\"><title>custody {3} → {4}</title></line>",
            x(hnd.at),
            lane_y(&hnd.from),
            lane_y(&hnd.to)
                + if lane_y(&hnd.to) > lane_y(&hnd.from) {
                    -6.0
                } else {
                    6.0
                },
            esc(&hnd.from),
            esc(&hnd.to)
        );
    }
    for r in &t.rows {
        let (cx, cy) = (x(r.at), lane_y(&r.agency));
        let _ = write!(
            s,
            "<circle class=\"event\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\"><title>{} {}{}</title></circle>",
            Timestamp::from_millis(r.at),
            esc(&r.event),
            r.recipient
                .as_ref()
                .map_or(String::new(), |to| format!(" → {}", esc(to)))
        );
        if let Some((rule, sev)) = &r.finding {
            let color = if *sev >= Severity::Error {
                "#dc2626"
            } else {
                "#d97706"
            };
            let _ = write!(
                s,
                "<g class=\"finding\"><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"9\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\"/>\
                 <title>{} {}</title></g>",
                sev.as_str(),
                esc(rule)
            );
        }
    }
    s.push_str("</svg>");
    s
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#111}\
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}\
.status.clean{color:#15803d}.status.failed{color:#b91c1c}.bad{color:#b91c1c;font-weight:bold}\
.sev-critical td:first-child{color:#fff;background:#b91c1c}.sev-error td:first-child{color:#b91c1c}\
.sev-warning td:first-child{color:#b45309}\
svg.timeline{border:1px solid #ddd;background:#fafafa}.lane line{stroke:#bbb;stroke-dasharray:3 3}\
.lane text{font-size:12px}.tick{font-size:10px;fill:#666}.custody{fill:#93c5fd}\
.consent{fill:#86efac}.event{fill:#1f2937}.handover{stroke:#c2410c;stroke-width:2.5}";
