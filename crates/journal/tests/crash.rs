//! Crash test: a child process (this test binary, re-executed) appends from
//! four threads and reports each seq after its append returned; the parent
//! kills it with SIGKILL at random moments, reopens the journal and checks
//! that every reported append is there, nothing partial is visible, the
//! whole journal verifies, and the event, case and outbox indexes (brought
//! back by log replay after the crash) hold exactly every entry.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use rand::Rng;
use waymark_crypto::AgencyKey;
use waymark_journal::{Journal, verify_journal};
use waymark_proto::v1::{Envelope, Event, JournalEntry};
use waymark_types::{CaseId, EventId, Timestamp};

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
                    // Thread 1 records a request with each event (the
                    // agency's idempotency keys): key = the event id.
                    let seq = if t == 1 {
                        let ev = Event::decode(
                            Envelope::decode(env.as_slice()).unwrap().payload.as_slice(),
                        )
                        .unwrap();
                        j.append_originated_for_request(
                            &env,
                            Timestamp::now(),
                            ev.event_id.as_bytes(),
                            b"request",
                        )
                        .unwrap()
                        .seq()
                    } else {
                        j.append_originated(&env, Timestamp::now()).unwrap().seq()
                    };
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
    let mut requests = 0usize;
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
        requests += check_indexes(&j, size, round);
        total += seqs.len();
    }
    assert!(total > 20);
    assert!(requests > 0, "no request record was ever checked");
}

/// Every entry is found through the event and case indexes, every entry with
/// a recipient is in the outbox (the child never completes any), the outbox
/// holds nothing else, and every request record names the entry of its
/// event. Returns how many request records were checked.
fn check_indexes<S: waymark_journal::JournalStore>(
    j: &Journal<S>,
    size: u64,
    round: usize,
) -> usize {
    let mut outbox = Vec::new();
    let mut requests = 0;
    for seq in 1..=size {
        let bytes = j.entry(seq).unwrap().unwrap();
        let entry = JournalEntry::decode(bytes.as_slice()).unwrap();
        let env = Envelope::decode(entry.envelope.as_slice()).unwrap();
        let ev = Event::decode(env.payload.as_slice()).unwrap();
        let id = EventId::parse(&ev.event_id).unwrap();
        assert_eq!(
            j.event_seq(&id).unwrap(),
            Some(seq),
            "round {round}: event index of entry {seq}"
        );
        let case = CaseId::parse(&ev.case_id).unwrap();
        let in_case: Vec<u64> = j
            .case_entries(&case, 0, 10)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            in_case,
            vec![seq],
            "round {round}: case index of entry {seq}"
        );
        if !ev.recipient_id.is_empty() {
            outbox.push(seq);
        }
        if let Some(r) = j.request_record(ev.event_id.as_bytes()).unwrap() {
            assert_eq!(
                (r.seq, r.value.as_slice()),
                (seq, &b"request"[..]),
                "round {round}: request record of entry {seq}"
            );
            requests += 1;
        }
    }
    let listed: Vec<u64> = j
        .outbox(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|o| o.seq)
        .collect();
    assert_eq!(listed, outbox, "round {round}: outbox");
    requests
}
