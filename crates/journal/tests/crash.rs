//! Crash test: a child process (this test binary, re-executed) appends from
//! four threads and reports each seq after its append returned; the parent
//! kills it with SIGKILL at random moments, reopens the journal and checks
//! that every reported append is there, nothing partial is visible, and the
//! whole journal verifies.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use waymark_crypto::AgencyKey;
use waymark_journal::verify_journal;
use waymark_types::{CaseId, Timestamp};

const CHILD_DIR: &str = "WAYMARK_JOURNAL_CRASH_DIR";

fn key() -> AgencyKey {
    AgencyKey::from_seed(&[7u8; 32])
}

#[test]
#[ignore = "the child half of sigkill_at_random_moments; does nothing on its own"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let key = key();
    let j = open(std::path::Path::new(&dir), &key);
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (j, key, out) = (&j, &key, &out);
            s.spawn(move || {
                loop {
                    let (_, env) = event(
                        key,
                        "police-a",
                        if t % 2 == 0 { "shelter-b" } else { "" },
                        Some(CaseId::new()),
                    );
                    let seq = j.append_originated(&env, Timestamp::now()).unwrap().seq();
                    if t == 0 {
                        j.maybe_checkpoint(Timestamp::now()).unwrap();
                    }
                    let mut o = out.lock().unwrap();
                    writeln!(o, "appended {seq}").unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut total = 0usize;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seqs = Arc::clone(&seqs);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("appended ") {
                        seqs.lock().unwrap().push(n.parse::<u64>().unwrap());
                    }
                }
            })
        };
        // Let it get going, then kill it at a random moment.
        let start = Instant::now();
        while seqs.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..150)));
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        reader.join().unwrap();

        let seqs = seqs.lock().unwrap().clone();
        assert!(
            !seqs.is_empty(),
            "round {round}: the child appended nothing"
        );
        let key = key();
        let j = open(dir.path(), &key);
        let size = j.size().unwrap();
        let max = *seqs.iter().max().unwrap();
        assert!(
            size >= max,
            "round {round}: seq {max} was acknowledged but the journal has {size} entries"
        );
        for s in &seqs {
            assert!(
                j.entry(*s).unwrap().is_some(),
                "round {round}: acknowledged entry {s} is missing"
            );
        }
        let summary = verify_journal(&j, &meta(&key), &ring(&[])).unwrap_or_else(|e| {
            panic!("round {round}: journal does not verify after SIGKILL: {e}")
        });
        assert_eq!(summary.entries, size);
        total += seqs.len();
    }
    assert!(total > 20);
}
