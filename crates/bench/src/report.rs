//! The report: a header saying how and where the figures were measured,
//! then one table line per figure, as Markdown (`BENCHMARKS.md`) or JSON.

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;
use waymark_types::Timestamp;

use crate::{Figure, Target};

/// Where and how a run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The command line.
    pub command: String,
    /// When the run started (UTC).
    pub date: String,
    /// CPUs available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// `uname -sr`-like kernel string from `/proc/sys/kernel`.
    pub kernel: String,
    /// 1-minute load average when the run started (other work on the
    /// machine).
    pub load: String,
    /// `git describe --always --dirty` of the working directory.
    pub commit: String,
    /// Whether this was a `--quick` smoke run.
    pub quick: bool,
}

impl Header {
    /// Describes this machine and run now.
    pub fn now(command: String, quick: bool) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        let kernel = format!(
            "{} {}",
            read("/proc/sys/kernel/ostype").trim(),
            read("/proc/sys/kernel/osrelease").trim()
        );
        let load = read("/proc/loadavg")
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_owned();
        let commit = Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            );
        Self {
            command,
            date: Timestamp::now().to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            load,
            commit,
            quick,
        }
    }
}

fn pass(f: &Figure) -> &'static str {
    match f.pass {
        Some(true) => "pass",
        Some(false) => "**FAIL**",
        None => "-",
    }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The report as Markdown: the header, the table, and the notes.
pub fn markdown(h: &Header, figures: &[Figure]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Waymark benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `waymark bench` (crate `waymark-bench`; method in its docs and in \
         README.md, \"Benchmarks\"). Every figure is a ratio to a raw baseline measured in the \
         same run, in interleaved rounds whose order alternates; *ratio* is the median of the \
         per-round ratios ours/baseline, *IQR* their interquartile range. Rates and times are \
         medians over rounds.\n"
    );
    if h.quick {
        let _ = writeln!(
            s,
            "**This is a `--quick` smoke run: short rounds and small sizes; the figures are not \
             representative.**\n"
        );
    }
    let _ = writeln!(s, "- command: `{}`", h.command);
    let _ = writeln!(s, "- date: {}", h.date);
    let _ = writeln!(
        s,
        "- machine: {} cores, {}, {}; load average {} at the start (the machine is shared)",
        h.cores, h.cpu, h.kernel, h.load
    );
    let _ = writeln!(s, "- commit: {}\n", h.commit);
    let _ = writeln!(
        s,
        "| | measurement | unit | ours | baseline | ratio | ratio IQR | rounds | target | result | baseline is |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---|---|---|");
    for f in figures {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2}–{:.2} | {} | {} | {} | {} |",
            f.id,
            f.name,
            f.unit,
            num(f.ours),
            num(f.baseline),
            f.ratio,
            f.ratio_iqr[0],
            f.ratio_iqr[1],
            f.rounds,
            if f.target == Target::None {
                "-".to_owned()
            } else {
                f.target.describe()
            },
            pass(f),
            f.baseline_name,
        );
    }
    let _ = writeln!(s, "\nNotes:\n");
    for f in figures.iter().filter(|f| !f.note.is_empty()) {
        let _ = writeln!(s, "- {} {}: {}", f.id, f.name, f.note);
    }
    s
}

/// The figures as JSON: `[{id, name, ours, baseline, ratio, ...}]`.
///
/// # Errors
/// Never in practice (the figures are plain data).
pub fn json(figures: &[Figure]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(pass_it: bool) -> Figure {
        let (ours, base) = if pass_it { (9.0, 10.0) } else { (1.0, 10.0) };
        Figure::from_rounds(
            "P4",
            "durable appends/s, 1 appender",
            "appends/s",
            &[ours, ours * 2.0, ours],
            &[base, base * 2.0, base],
            "raw",
            Target::RatioAtLeast(0.7),
            "batch 1.0",
        )
    }

    #[test]
    fn ratios_are_per_round_and_targets_decide_pass() {
        let f = fig(true);
        assert!((f.ratio - 0.9).abs() < 1e-9, "{}", f.ratio);
        assert_eq!(f.pass, Some(true));
        assert_eq!(fig(false).pass, Some(false));
        let p5 = Figure::from_rounds(
            "P5",
            "rss",
            "MB",
            &[250.0],
            &[40.0],
            "empty",
            Target::OursAtMost(200.0),
            "",
        );
        assert_eq!(p5.pass, Some(false));
        assert_eq!(Target::None.met(1.0, 1.0), None);
    }

    #[test]
    fn markdown_and_json_hold_every_figure() {
        let h = Header::now("waymark bench --quick".into(), true);
        let figs = [fig(true), fig(false)];
        let md = markdown(&h, &figs);
        assert!(md.contains("command: `waymark bench --quick`"));
        assert!(md.contains("| pass |") && md.contains("**FAIL**"));
        assert!(md.contains("not representative"));
        let v: serde_json::Value = serde_json::from_str(&json(&figs).unwrap()).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        for key in ["name", "ours", "baseline", "ratio"] {
            assert!(arr[0].get(key).is_some(), "{key}");
        }
    }
}
