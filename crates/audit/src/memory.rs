//! Measures what the audit keeps per event when cases grow long (see the
//! crate docs, "Memory"): a synthetic federation with few cases and many
//! events each is audited in a fresh process (this test binary run again
//! for one test), whose peak resident set (`VmHWM`) is read from
//! `/proc/self/status`. Two sizes give the growth per added event, which
//! must stay a small record (an event id and a digest per distinct event),
//! never the events themselves.

/// The peak resident set of this process in KiB, from `/proc/self/status`.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::peak_rss_kib;
    use crate::synth::{self, Shape};
    use crate::{AuditOptions, audit_dir};

    /// Set in the child process: the number of services per case to audit.
    const CHILD: &str = "WAYMARK_AUDIT_MEMORY_SERVICES";
    /// Few cases, so almost every event is on a case that is already known.
    const CASES: usize = 4;

    /// The child: write and audit one federation, print events and peak RSS.
    /// Does nothing unless run by [`measure`].
    #[test]
    fn child_audit() {
        let Ok(services) = std::env::var(CHILD) else {
            return;
        };
        let services: usize = services.parse().expect("services");
        let dir = tempfile::tempdir().expect("tempdir");
        let events = synth::write_shape(
            dir.path(),
            Shape {
                cases: CASES,
                services,
            },
        )
        .expect("synth");
        let opts = AuditOptions {
            threads: 1,
            ..AuditOptions::default()
        };
        let report = audit_dir(dir.path(), &opts).expect("audit");
        assert!(report.clean, "{:?}", report.findings.first());
        assert_eq!(report.totals.cases, CASES as u64);
        // Distinct events: 8 per case plus the services (the rest are copies).
        assert_eq!(
            report.totals.events_applied,
            (CASES * (8 + services)) as u64
        );
        let peak = peak_rss_kib().expect("VmHWM in /proc/self/status");
        eprintln!("WAYMARK_MEMORY events={events} peak_kib={peak}");
    }

    /// Runs [`child_audit`] in a fresh process: (event entries, peak RSS KiB).
    fn measure(services: usize) -> (u64, u64) {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args(["memory::tests::child_audit", "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD, services.to_string())
            .output()
            .expect("running the child");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{err}");
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("WAYMARK_MEMORY "))
            .unwrap_or_else(|| panic!("no measurement in:\n{err}"));
        let field = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .expect("field")
        };
        (field("events="), field("peak_kib="))
    }

    /// Growth per event on long cases: well under the size of one decoded
    /// event (several hundred bytes with its strings), i.e. the replay keeps
    /// identities, not events.
    #[test]
    fn long_cases_cost_a_small_record_per_event() {
        if peak_rss_kib().is_none() {
            eprintln!("no /proc/self/status here: nothing to measure");
            return;
        }
        let (e1, k1) = measure(2_000);
        let (e2, k2) = measure(40_000);
        let per_event = (k2.saturating_sub(k1) * 1024) as f64 / (e2 - e1) as f64;
        eprintln!(
            "{CASES} cases: {e1} events peak {k1} KiB, {e2} events peak {k2} KiB: \
         {per_event:.0} B per added event"
        );
        assert!(
            per_event < 160.0,
            "the audit keeps {per_event:.0} B per event on long cases"
        );
    }
}
