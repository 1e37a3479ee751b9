//! The conformance suite every [`JournalStore`] must pass.
//!
//! Call [`run`] from a test with an empty directory and a factory that opens
//! (or reopens) the store in a directory; it panics with a message naming the
//! broken rule. The sled store runs it in `tests/conformance.rs`.

use std::path::Path;

use waymark_types::{AgencyId, CaseId, EventId};

use crate::merkle::{self, Frontier};
use crate::store::{
    Batch, JournalStore, OutboxItem, RequestRecord, StoredCheckpoint, StoredCosignature,
    StoredEntry,
};

fn entries(frontier: &mut Frontier, from: u64, n: u64, case: Option<CaseId>) -> Vec<StoredEntry> {
    (from..from + n)
        .map(|seq| {
            let bytes = format!("entry {seq}").into_bytes();
            let hash = merkle::leaf_hash(&bytes);
            StoredEntry {
                seq,
                bytes,
                hash,
                nodes: frontier.push(hash),
                case_id: case,
                event_id: Some(EventId::new()),
            }
        })
        .collect()
}

fn agency(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap_or_else(|e| panic!("test agency id: {e}"))
}

/// Runs every check against stores opened by `open` in `dir` (which must be
/// empty). `open` is called several times on the same directory to check
/// persistence; the previous store is dropped first.
///
/// # Panics
/// On the first violated rule, with a message naming it.
pub fn run<S: JournalStore>(dir: &Path, mut open: impl FnMut(&Path) -> S) {
    let case = CaseId::new();
    let other_case = CaseId::new();
    let police = agency("police-a");
    let shelter = agency("shelter-b");
    let mut frontier = Frontier::new();

    let s = open(dir);
    assert_eq!(s.size().unwrap(), 0, "a new store is empty");
    assert!(s.entry(1).unwrap().is_none(), "a new store has no entry 1");

    // Batch 1: three entries of a case, an outbox item for two recipients.
    let b1 = entries(&mut frontier, 1, 3, Some(case));
    let ev1 = b1[0].event_id.unwrap();
    let batch = Batch {
        outbox_add: vec![
            OutboxItem {
                seq: 1,
                recipient: shelter.clone(),
                event_id: ev1,
            },
            OutboxItem {
                seq: 1,
                recipient: police.clone(),
                event_id: ev1,
            },
        ],
        entries: b1.clone(),
        ..Batch::default()
    };
    s.commit(&batch).unwrap();
    assert_eq!(s.size().unwrap(), 3, "size after a commit");
    assert_eq!(
        s.entry(2).unwrap().as_ref(),
        Some(&b1[1]),
        "entry read back verbatim"
    );

    // A batch that skips or repeats a seq is rejected and changes nothing.
    let mut bad = Frontier::new();
    let gap = Batch {
        entries: entries(&mut bad, 5, 1, None),
        ..Batch::default()
    };
    assert!(s.commit(&gap).is_err(), "a batch with a gap is rejected");
    let again = Batch {
        entries: entries(&mut Frontier::new(), 3, 1, None),
        ..Batch::default()
    };
    assert!(
        s.commit(&again).is_err(),
        "a batch repeating a seq is rejected"
    );
    assert_eq!(s.size().unwrap(), 3, "a rejected batch changes nothing");

    // Batch 2: more entries (other case), a receipt removing one outbox item,
    // a checkpoint and a cosignature.
    let b2 = entries(&mut frontier, 4, 6, Some(other_case));
    let batch = Batch {
        entries: b2.clone(),
        outbox_remove: vec![(1, shelter.clone())],
        checkpoints: vec![StoredCheckpoint {
            size: 9,
            envelope: b"ckpt9".to_vec(),
        }],
        cosignatures: vec![StoredCosignature {
            size: 9,
            witness: shelter.clone(),
            envelope: b"cosig".to_vec(),
        }],
        requests: vec![RequestRecord {
            key: b"OpenCase\0k-1".to_vec(),
            seq: 5,
            value: b"fingerprint".to_vec(),
        }],
        ..Batch::default()
    };
    s.commit(&batch).unwrap();
    s.commit(&Batch {
        checkpoints: vec![StoredCheckpoint {
            size: 3,
            envelope: b"ckpt3".to_vec(),
        }],
        ..Batch::default()
    })
    .unwrap();
    s.commit(&Batch::default()).unwrap();
    drop(s);

    // Everything survives a reopen.
    let s = open(dir);
    assert_eq!(s.size().unwrap(), 9, "size survives reopen");
    for e in b1.iter().chain(&b2) {
        assert_eq!(
            s.entry(e.seq).unwrap().as_ref(),
            Some(e),
            "entry {} survives reopen",
            e.seq
        );
        assert_eq!(
            s.event_seq(&e.event_id.unwrap()).unwrap(),
            Some(e.seq),
            "event index of {}",
            e.seq
        );
    }
    assert_eq!(
        s.event_seq(&EventId::new()).unwrap(),
        None,
        "unknown events are absent"
    );
    assert_eq!(
        s.case_seqs(&case, 0, 100).unwrap(),
        vec![1, 2, 3],
        "case index in order"
    );
    assert_eq!(
        s.case_seqs(&other_case, 5, 2).unwrap(),
        vec![6, 7],
        "case index paging"
    );
    assert!(
        s.case_seqs(&CaseId::new(), 0, 10).unwrap().is_empty(),
        "unknown case"
    );
    assert_eq!(
        s.outbox(0, 10).unwrap(),
        vec![OutboxItem {
            seq: 1,
            recipient: police.clone(),
            event_id: ev1
        }],
        "outbox after the receipt removed one item"
    );
    assert!(s.outbox_contains(1, &police).unwrap() && !s.outbox_contains(1, &shelter).unwrap());
    assert!(s.outbox(1, 10).unwrap().is_empty(), "outbox paging");
    let cps = s.checkpoints(0, 10).unwrap();
    assert_eq!(
        cps.iter().map(|c| c.size).collect::<Vec<_>>(),
        vec![3, 9],
        "checkpoints ordered by size"
    );
    assert_eq!(
        s.latest_checkpoint().unwrap().map(|c| c.size),
        Some(9),
        "latest checkpoint"
    );
    assert_eq!(
        s.checkpoints(4, 10).unwrap().len(),
        1,
        "checkpoints from a size"
    );
    let cs = s.cosignatures(9).unwrap();
    assert_eq!(cs.len(), 1, "cosignature stored");
    assert_eq!(cs[0].witness, shelter, "cosignature witness");
    assert!(
        s.cosignatures(3).unwrap().is_empty(),
        "no cosignature for size 3"
    );
    assert_eq!(
        s.request_record(b"OpenCase\0k-1").unwrap(),
        Some(RequestRecord {
            key: b"OpenCase\0k-1".to_vec(),
            seq: 5,
            value: b"fingerprint".to_vec(),
        }),
        "request record survives reopen"
    );
    assert_eq!(
        s.request_record(b"OpenCase\0k-2").unwrap(),
        None,
        "unknown request keys are absent"
    );

    // Merkle nodes: the root from stored nodes equals the in-memory frontier's.
    let src = crate::journal::StoreNodes(&s);
    assert_eq!(
        merkle::root(&src, 9).unwrap(),
        frontier.root(),
        "root from stored nodes"
    );
    for size in 1..=9 {
        let leaves: Vec<_> = (1..=size)
            .map(|q| s.entry(q).unwrap().unwrap().hash)
            .collect();
        assert_eq!(
            merkle::root(&src, size).unwrap(),
            merkle::root_from_leaves(&leaves),
            "root of size {size}"
        );
    }
    assert!(
        s.node(0, 9).is_err(),
        "a node beyond the journal is an error"
    );
}

/// Checks reads across many entries: 300 entries in frames of 1 to 7,
/// alternating between two cases and entries about no case, read back one
/// by one and through the per-case index at every starting point and with
/// small and large pages, before and after reopening. (Stores that group
/// records, as the sled index does, cross their group boundaries here.)
///
/// # Panics
/// On the first violated rule, with a message naming it.
pub fn run_many<S: JournalStore>(dir: &Path, mut open: impl FnMut(&Path) -> S) {
    let cases = [CaseId::new(), CaseId::new()];
    let mut frontier = Frontier::new();
    let mut written: Vec<StoredEntry> = Vec::new();
    let mut by_case: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    {
        let s = open(dir);
        let mut seq = 1;
        let mut frame = 0u64;
        while seq <= 300 {
            let n = (frame % 7 + 1).min(301 - seq);
            let mut batch = Batch::default();
            for e in (0..n).map(|i| {
                let which = (seq + i) % 5;
                let case = match which {
                    0 => None,
                    1 | 2 => Some(cases[0]),
                    _ => Some(cases[1]),
                };
                entries(&mut frontier, seq + i, 1, case).remove(0)
            }) {
                if let Some(c) = e.case_id {
                    by_case[usize::from(c == cases[1])].push(e.seq);
                }
                batch.entries.push(e);
            }
            s.commit(&batch).unwrap();
            written.extend(batch.entries);
            seq += n;
            frame += 1;
        }
    }
    for round in ["written", "reopened"] {
        let s = open(dir);
        assert_eq!(s.size().unwrap(), 300, "{round}: size");
        for e in &written {
            assert_eq!(
                s.entry(e.seq).unwrap().as_ref(),
                Some(e),
                "{round}: entry {}",
                e.seq
            );
        }
        assert!(
            s.entry(301).unwrap().is_none(),
            "{round}: no entry past the end"
        );
        for (c, seqs) in cases.iter().zip(&by_case) {
            assert_eq!(
                &s.case_seqs(c, 0, 1000).unwrap(),
                seqs,
                "{round}: whole case"
            );
            for after in 0..=301 {
                let rest: Vec<u64> = seqs.iter().copied().filter(|q| *q > after).collect();
                for limit in [1, 3, 64, 1000] {
                    let want: Vec<u64> = rest.iter().copied().take(limit).collect();
                    assert_eq!(
                        s.case_seqs(c, after, limit).unwrap(),
                        want,
                        "{round}: case page after {after}, limit {limit}"
                    );
                }
            }
        }
        drop(s);
    }
}

/// Checks that readers never find a seq they cannot read: while one thread
/// commits 3,000 single-entry frames about one case (and others read), every
/// seq found through the per-case or the event index has its entry, and a
/// case's seqs come back ascending, none twice. (A
/// store may expose index records of a frame before it moves the size; it
/// must write an entry's own record before anything that points at it.)
///
/// # Panics
/// On the first violated rule, with a message naming it.
pub fn run_concurrent_reads<S: JournalStore + Sync>(dir: &Path, mut open: impl FnMut(&Path) -> S) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = open(dir);
    let case = CaseId::new();
    let done = AtomicBool::new(false);
    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|t| {
        t.spawn(|| {
            let mut frontier = Frontier::new();
            for seq in 1..=3000 {
                let batch = Batch {
                    entries: entries(&mut frontier, seq, 1, Some(case)),
                    ..Batch::default()
                };
                if let Ok(mut ids) = ids.lock() {
                    ids.extend(batch.entries.iter().filter_map(|e| e.event_id));
                }
                s.commit(&batch).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let mut rounds = 0u64;
        while !done.load(Ordering::Acquire) || rounds == 0 {
            rounds += 1;
            let after = s.size().unwrap().saturating_sub(40);
            let seqs = s.case_seqs(&case, after, 1000).unwrap();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "case seqs ascend without repeats: {seqs:?}"
            );
            for seq in seqs {
                assert!(
                    s.entry(seq).unwrap().is_some(),
                    "the case index names entry {seq}, which cannot be read"
                );
            }
            let recent: Vec<EventId> = ids
                .lock()
                .map(|i| i.iter().rev().take(4).copied().collect())
                .unwrap_or_default();
            for id in recent {
                if let Some(seq) = s.event_seq(&id).unwrap() {
                    assert!(
                        s.entry(seq).unwrap().is_some(),
                        "the event index names entry {seq}, which cannot be read"
                    );
                }
            }
        }
    });
    assert_eq!(s.case_seqs(&case, 0, 5000).unwrap().len(), 3000);
}
