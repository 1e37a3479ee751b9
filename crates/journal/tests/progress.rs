//! Waiting for a staged append without a thread (`Journal::progress`,
//! `Journal::lead`, `Journal::on_progress`), as the bus's async sends do.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use waymark_crypto::AgencyKey;
use waymark_journal::{Appended, Journal, Progress, SledStore, Staged, verify_journal};
use waymark_types::{CaseId, Timestamp};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn originated(j: &Journal<SledStore>, key: &AgencyKey) -> Staged {
    let (_, env) = event(key, "police-a", "shelter-b", Some(CaseId::new()));
    j.stage_originated(&env, t(1)).unwrap()
}

/// Counts the journal's progress calls.
fn count_steps(j: &Journal<SledStore>) -> Arc<AtomicU64> {
    let steps = Arc::new(AtomicU64::new(0));
    j.on_progress({
        let steps = steps.clone();
        move || {
            steps.fetch_add(1, Ordering::SeqCst);
        }
    });
    steps
}

#[test]
fn one_caller_is_told_to_lead_the_others_wait_and_its_commit_makes_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let steps = count_steps(&j);
    let (a, b) = (originated(&j, &key), originated(&j, &key));
    assert_eq!(j.progress(&a).unwrap(), Progress::Lead);
    // The claim stands until its holder leads: nobody else is told to.
    assert_eq!(j.progress(&b).unwrap(), Progress::Wait);
    assert_eq!(j.progress(&a).unwrap(), Progress::Wait);
    assert_eq!(j.size().unwrap(), 0);
    assert!(matches!(j.lead(a).unwrap(), Appended::New { seq: 1, .. }));
    // One commit held both, and the waiters were told.
    assert_eq!(j.size().unwrap(), 2);
    assert!(matches!(
        j.progress(&b).unwrap(),
        Progress::Durable(Appended::New { seq: 2, .. })
    ));
    assert!(steps.load(Ordering::SeqCst) >= 1);
    // The next batch gets a leader of its own.
    let c = originated(&j, &key);
    assert_eq!(j.progress(&c).unwrap(), Progress::Lead);
    assert!(matches!(j.lead(c).unwrap(), Appended::New { seq: 3, .. }));
}

#[test]
fn a_claimant_whose_append_another_leader_committed_returns_at_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let steps = count_steps(&j);
    let a = originated(&j, &key);
    assert_eq!(j.progress(&a).unwrap(), Progress::Lead);
    // A plain append leads instead, committing `a` with its own entry.
    let (_, env) = event(&key, "police-a", "", Some(CaseId::new()));
    assert_eq!(j.append_originated(&env, t(2)).unwrap().seq(), 2);
    let before = steps.load(Ordering::SeqCst);
    assert!(matches!(j.lead(a).unwrap(), Appended::New { seq: 1, .. }));
    assert!(steps.load(Ordering::SeqCst) > before);
    // The claim is gone: a new staged append may lead.
    let b = originated(&j, &key);
    assert_eq!(j.progress(&b).unwrap(), Progress::Lead);
    j.lead(b).unwrap();
    assert_eq!(j.size().unwrap(), 3);
}

/// Progress steps seen, and a way to sleep until the next one: a stand-in
/// for the bus's `tokio::sync::Notify`.
#[derive(Default)]
struct Steps {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Steps {
    fn now(&self) -> u64 {
        *self.count.lock().unwrap()
    }

    /// Sleeps until a step after `seen`; panics if none comes in 10 s (a
    /// waiter nobody would ever wake: the lost wake-up this API must not
    /// have).
    fn wait_after(&self, seen: u64) {
        let guard = self.count.lock().unwrap();
        let (_guard, timeout) = self
            .changed
            .wait_timeout_while(guard, Duration::from_secs(10), |c| *c == seen)
            .unwrap();
        assert!(!timeout.timed_out(), "a waiting append was never woken");
    }
}

/// Many waiters of each kind on few cores: async-style ones (progress,
/// lead when told) and sleeping ones (`wait_staged`, plain appends). Every
/// append returns durable, none waits forever, and the journal verifies.
#[test]
fn async_style_and_sleeping_appenders_together_all_return() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let steps = Arc::new(Steps::default());
    j.on_progress({
        let steps = steps.clone();
        move || {
            *steps.count.lock().unwrap() += 1;
            steps.changed.notify_all();
        }
    });
    let led = AtomicU64::new(0);
    std::thread::scope(|s| {
        for n in 0..24 {
            let (j, key, steps, led) = (&j, &key, &steps, &led);
            s.spawn(move || {
                for _ in 0..40 {
                    if n % 3 == 0 {
                        let (_, env) = event(key, "police-a", "", Some(CaseId::new()));
                        j.append_originated(&env, t(1)).unwrap();
                        continue;
                    }
                    let st = originated(j, key);
                    loop {
                        let seen = steps.now();
                        match j.progress(&st).unwrap() {
                            Progress::Durable(a) => {
                                assert_eq!(a, st.appended());
                                break;
                            }
                            Progress::Lead => {
                                led.fetch_add(1, Ordering::Relaxed);
                                assert_eq!(j.lead(st).unwrap(), st.appended());
                                break;
                            }
                            Progress::Wait => steps.wait_after(seen),
                        }
                    }
                    assert!(j.size().unwrap() >= st.appended().seq());
                }
            });
        }
    });
    assert_eq!(j.size().unwrap(), 24 * 40);
    assert!(led.load(Ordering::Relaxed) > 0);
    verify_journal(&j, &meta(&key), &ring(&[])).unwrap();
}
