//! The sled store passes the store conformance suite.

use waymark_journal::{SledConfig, SledStore, conformance};

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), |p| {
        SledStore::open(p, &SledConfig::default()).unwrap()
    });
}

#[test]
fn index_is_rebuilt_from_the_log_when_lost() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), |p| {
        SledStore::open(p, &SledConfig::default()).unwrap()
    });
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    use waymark_journal::JournalStore;
    assert_eq!(s.size().unwrap(), 9);
    assert_eq!(s.latest_checkpoint().unwrap().map(|c| c.size), Some(9));
}
