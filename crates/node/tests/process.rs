//! The process shell: exit codes, and no port bound on bad configuration.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_waymark-node-check");

fn base(dir: &tempfile::TempDir) -> Command {
    let key = dir.path().join("signing.key");
    std::fs::write(&key, b"k").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("WAYMARK_AGENCY__ID", "bg-ngo-plovdiv")
        .env("WAYMARK_AGENCY__KIND", "ngo")
        .env("WAYMARK_AGENCY__COUNTRY", "BG")
        .env("WAYMARK_JOURNAL__DATA_DIR", dir.path().join("journal"))
        .env("WAYMARK_KEYS__SIGNING_KEY_FILE", key);
    cmd
}

#[test]
fn invalid_config_exits_64_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    // Hold a port: if the node tried to bind before validating, it would fail
    // with a bind error (exit 1) instead of the configuration error.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let out = base(&dir)
        .args(["--listen", &addr.to_string()])
        .args(["--set", "telemetry.metrics_listen=abc"])
        .env("WAYMARK_GRPC__MAX_REQUEST_BYTES", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("invalid configuration (2 problems)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WAYMARK_GRPC__MAX_REQUEST_BYTES: 0 is out of range"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--set telemetry.metrics_listen: invalid socket address \"abc\""),
        "{stderr}"
    );
    assert!(!stderr.contains("bind"), "{stderr}");
}

#[test]
fn bad_flags_exit_64_and_check_config_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = base(&dir).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));

    let out = base(&dir).arg("--check-config").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("id = \"bg-ngo-plovdiv\""), "{stdout}");
}

#[test]
fn sigterm_stops_a_running_node_cleanly() {
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = base(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("gRPC server listening"));
    assert!(listening, "node did not start");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
