//! The sled store passes the store conformance suite.

use std::time::{Duration, Instant};

use waymark_journal::{SledConfig, SledStore, conformance};

/// Opens the store in `p`. The suite reopens a directory right after
/// dropping its store; sled releases its file lock when its background
/// flusher thread has ended, which on a loaded machine can be a moment
/// later, so a lock conflict is retried for a few seconds.
fn open(p: &std::path::Path) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(p, &SledConfig::default()) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline && format!("{e:?}").contains("acquire lock") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening the sled store: {e:?}"),
        }
    }
}

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), open);
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
        k.extend_from_slice(&3u64.to_be_bytes());
        db.insert(k, &b"not a version-2 record"[..]).unwrap();
        db.flush().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.size().unwrap(), 9);
    for e in &before {
        assert_eq!(s.entry(e.seq).unwrap().as_ref(), Some(e));
    }
}
