//! Temporary directories that outlive a failed test.
//!
//! A [`TestDir`] is deleted on drop when the test passes. When the dropping
//! thread is panicking (a failed assertion), or `WAYMARK_KEEP_TEST_DIRS=1` is
//! set, the directory is kept and its path printed to stderr, so server logs,
//! store files and journals can be inspected after the fact.
//!
//! A test that fails by *returning* `Err` has already dropped its locals when
//! the harness sees the error, without panicking: its dirs are deleted. Such
//! tests keep their evidence with `WAYMARK_KEEP_TEST_DIRS=1`; the harness's
//! own errors carry the server log tail in their message anyway.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Set to `1` to keep every [`TestDir`], passed or failed.
pub const ENV_KEEP_TEST_DIRS: &str = "WAYMARK_KEEP_TEST_DIRS";

/// A temporary directory deleted on drop unless the test failed (see module docs).
#[derive(Debug)]
pub struct TestDir {
    /// `None` only after [`TestDir::keep`] took it.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// Creates `$TMPDIR/waymark-<label>-XXXXXX`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn new(label: &str) -> Result<Self> {
        let prefix = format!("waymark-{label}-");
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir().join(prefix),
                source,
            })?;
        let path = dir.path().to_path_buf();
        Ok(Self {
            dir: Some(dir),
            path,
        })
    }

    /// The directory's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory on disk whatever happens, and returns its path.
    #[must_use = "the directory is no longer deleted: keep its path"]
    pub fn keep(mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.path.clone()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let keep_env = std::env::var_os(ENV_KEEP_TEST_DIRS);
        if should_keep(std::thread::panicking(), keep_env.as_deref()) {
            let path = dir.keep();
            eprintln!("waymark-testkit: kept test dir {}", path.display());
        }
        // Otherwise `dir` drops here and deletes the tree (best effort).
    }
}

/// Whether a [`TestDir`] is kept: on panic, or when the keep variable is `1`.
pub(crate) fn should_keep(panicking: bool, keep_env: Option<&OsStr>) -> bool {
    panicking || keep_env.is_some_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_decision() {
        assert!(!should_keep(false, None));
        assert!(!should_keep(false, Some(OsStr::new("0"))));
        assert!(!should_keep(false, Some(OsStr::new(""))));
        assert!(should_keep(false, Some(OsStr::new("1"))));
        assert!(should_keep(true, None));
    }

    fn keep_env_set() -> bool {
        should_keep(false, std::env::var_os(ENV_KEEP_TEST_DIRS).as_deref())
    }

    #[test]
    fn deleted_when_the_test_passes() {
        let dir = TestDir::new("passes").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("file"), b"x").unwrap();
        assert!(path.is_dir());
        drop(dir);
        assert_eq!(path.exists(), keep_env_set());
    }

    #[test]
    fn kept_when_the_thread_panics() {
        let (tx, rx) = std::sync::mpsc::channel();
        let joined = std::thread::spawn(move || {
            let dir = TestDir::new("panics").unwrap();
            std::fs::write(dir.path().join("evidence.log"), b"what went wrong").unwrap();
            tx.send(dir.path().to_path_buf()).unwrap();
            panic!("simulated test failure");
        })
        .join();
        assert!(joined.is_err(), "the thread should have panicked");
        let path = rx.recv().unwrap();
        assert!(
            path.join("evidence.log").is_file(),
            "kept dir lost its contents"
        );
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn keep_detaches_the_directory() {
        let path = TestDir::new("keep").unwrap().keep();
        assert!(path.is_dir());
        std::fs::remove_dir_all(&path).unwrap();
    }
}
