//! The sled store passes the store conformance suite.

use waymark_journal::conformance;

mod common;
use common::open_store as open;

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), open);
}

#[test]
fn sled_store_entries_are_readable_once_indexed() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_concurrent_reads(dir.path(), open);
}

#[test]
fn sled_store_reads_across_many_entries() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_many(dir.path(), open);
}

/// The end offsets of the write-ahead log's frames (`magic:4 len:4 LE
/// checksum:8 body`, zero-filled after the last).
fn frame_ends(wal: &std::path::Path) -> Vec<u64> {
    let bytes = std::fs::read(wal).unwrap();
    let mut ends = Vec::new();
    let mut at = 0usize;
    while bytes.get(at..at + 4) == Some(b"WMW1") {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 16 + len;
        ends.push(at as u64);
    }
    ends
}

/// Sets the index head (what the index holds everything through) back.
fn set_head(dir: &std::path::Path, size: u64, wal_end: u64) {
    let db = sled::open(dir.join("index")).unwrap();
    let mut head = size.to_be_bytes().to_vec();
    head.extend_from_slice(&wal_end.to_be_bytes());
    db.insert(b"mhead", head).unwrap();
    db.flush().unwrap();
}

/// Replaying frames the index already holds changes nothing: after a crash
/// sled may have kept any prefix of the index writes made after the head it
/// recovered, and the frames after that head are applied again. Here the
/// head is set back (to the start, and to the middle of a case's chunk), so
/// the frames after it are replayed onto an index that holds them; every
/// read must be as before.
#[test]
fn replaying_frames_onto_the_index_is_idempotent() {
    use waymark_journal::JournalStore;
    let dir = tempfile::tempdir().unwrap();
    conformance::run_many(dir.path(), open);
    let (before, cases): (Vec<_>, Vec<_>) = {
        let s = open(dir.path());
        let before: Vec<_> = (1..=300).map(|q| s.entry(q).unwrap().unwrap()).collect();
        let cases = before
            .iter()
            .filter_map(|e| e.case_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|c| (c, s.case_seqs(&c, 0, 1000).unwrap()))
            .collect();
        (before, cases)
    };
    assert_eq!(cases.len(), 2);
    // `run_many` writes frames of 1, 2, .., 7, 1, 2, .. entries.
    let ends = frame_ends(&dir.path().join("journal.wal"));
    let size_after = |frames: u64| (0..frames).map(|f| f % 7 + 1).sum::<u64>().min(300);
    assert_eq!(
        size_after(ends.len() as u64),
        300,
        "the frames run_many wrote"
    );
    for frames in [0, 20, 20, 75] {
        let wal_end = if frames == 0 { 0 } else { ends[frames - 1] };
        set_head(dir.path(), size_after(frames as u64), wal_end);
        let s = open(dir.path());
        assert_eq!(s.size().unwrap(), 300);
        for (c, seqs) in &cases {
            assert_eq!(
                &s.case_seqs(c, 0, 1000).unwrap(),
                seqs,
                "replay after frame {frames}: no seq twice, none lost"
            );
        }
        for e in &before {
            assert_eq!(s.entry(e.seq).unwrap().as_ref(), Some(e), "entry {}", e.seq);
        }
        drop(s);
    }
}

#[test]
fn index_is_rebuilt_from_the_log_when_lost() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), open);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = open(dir.path());
    use waymark_journal::JournalStore;
    assert_eq!(s.size().unwrap(), 9);
    assert_eq!(s.latest_checkpoint().unwrap().map(|c| c.size), Some(9));
}

/// An index of another layout (version 1 kept entry bytes inline) is
/// dropped on open and rebuilt from the log: every entry reads back whole.
#[test]
fn an_index_of_another_layout_is_rebuilt() {
    use waymark_journal::JournalStore;
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), open);
    let before: Vec<_> = {
        let s = open(dir.path());
        (1..=9).map(|q| s.entry(q).unwrap().unwrap()).collect()
    };
    {
        // Mark it as a version-1 index and damage an entry record the way
        // the old layout would be misread.
        let db = sled::open(dir.path().join("index")).unwrap();
        db.insert(b"mversion", &b"1"[..]).unwrap();
        let mut k = vec![b'e'];
        k.extend_from_slice(&0u64.to_be_bytes());
        db.insert(k, &b"not a version-3 record group"[..]).unwrap();
        db.flush().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.size().unwrap(), 9);
    for e in &before {
        assert_eq!(s.entry(e.seq).unwrap().as_ref(), Some(e));
    }
}
