//! The HTML report of the demo export: structure, and (when Debian's
//! `chromium` is installed) a headless render to a screenshot.

mod audit_fixture;

use std::process::Command;

use audit_fixture::{AGENCIES, Fixture};

#[test]
fn html_report_of_the_demo_has_lanes_and_handover_arrows() {
    let fx = Fixture::new();
    let html = fx.dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["audit", "--json", "--html"])
        .arg(&html)
        .arg(&fx.clean)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();

    // Self-contained: no external assets, no script.
    assert!(page.starts_with("<!DOCTYPE html>"));
    for banned in ["<script", "src=\"http", "href=\"http", "<link", "@import"] {
        assert!(!page.contains(banned), "external asset or script: {banned}");
    }
    let timelines = report["timelines"].as_array().unwrap();
    assert_eq!(timelines.len(), 10, "one timeline per demo case");
    let svgs: Vec<&str> = page.split("<svg").skip(1).collect();
    assert_eq!(svgs.len(), timelines.len(), "one inline SVG per case");
    let mut arrows = 0;
    for (svg, t) in svgs.iter().zip(timelines) {
        let svg = svg.split("</svg>").next().unwrap();
        // One lane per agency.
        assert_eq!(svg.matches("class=\"lane\"").count(), AGENCIES.len());
        for (a, _) in AGENCIES {
            assert!(svg.contains(&format!("data-agency=\"{a}\"")), "lane {a}");
        }
        // One arrow per accepted handover of the case.
        let accepted = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == "handover_accepted")
            .count();
        assert_eq!(svg.matches("class=\"handover\"").count(), accepted);
        assert_eq!(t["handovers"].as_array().unwrap().len(), accepted);
        arrows += accepted;
        let consents = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["event"] == "consent_granted");
        assert_eq!(
            svg.contains("class=\"consent\""),
            consents,
            "consent bars exactly where consent was given"
        );
        assert!(svg.contains("class=\"custody\""), "custody band");
    }
    assert!(arrows >= 8, "the demo hands most cases over: {arrows}");

    // A headless render, if chromium is here (CI may not have it).
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!(
            "SKIPPED headless render: chromium is not installed (apt-get install -y chromium)"
        );
        return;
    };
    let shot = std::env::var_os("WAYMARK_AUDIT_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fx.dir.path().join("report.png"));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=1100,1400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}
