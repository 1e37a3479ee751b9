//! Per-case keys for personal data at rest, kept apart from the journal and
//! from the agency store.
//!
//! # Design
//! One file per case, `<data_dir>/case-keys/<case id>.key`, holding the
//! case's 32 random key bytes (mode 0600; the directory 0700). Personal data
//! in the agency store is ChaCha20-Poly1305 ciphertext under this key
//! (`waymark_crypto::seal::CaseBox`, the case id as associated data), so
//! destroying the key erases every copy of the data the store still holds,
//! including copies in old segments of sled's log that a delete would not
//! reach. That is why the keys are not in sled.
//!
//! # Durability and erasure
//! - Create: write to a new file (`create_new`: two racing creators cannot
//!   both win), fsync it and the directory, before any ciphertext under the
//!   key is stored. A loser reads the winner's key.
//! - Destroy: overwrite the bytes with zeros, fsync, unlink, fsync the
//!   directory. What a filesystem or a disk keeps of overwritten blocks is
//!   outside what software can promise; full-disk encryption is the
//!   deployment's part (deploy/README.md).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use waymark_crypto::seal::CaseBox;
use waymark_types::CaseId;

/// The per-case key directory.
#[derive(Debug, Clone)]
pub(crate) struct CaseKeys {
    dir: PathBuf,
}

/// A case-key file operation failed.
#[derive(Debug, thiserror::Error)]
#[error("case keys: {step} {path}")]
pub struct CaseKeyError {
    step: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl CaseKeys {
    /// Opens (or creates, mode 0700) the directory.
    pub(crate) fn open(dir: &Path) -> Result<Self, CaseKeyError> {
        let err = |source| CaseKeyError {
            step: "creating",
            path: dir.to_owned(),
            source,
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(err)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, case: &CaseId) -> PathBuf {
        self.dir.join(format!("{case}.key"))
    }

    /// The key of `case`, if it has one (none: never made, or destroyed).
    pub(crate) fn get(&self, case: &CaseId) -> Result<Option<CaseBox>, CaseKeyError> {
        let path = self.path(case);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let raw: [u8; 32] = bytes.try_into().map_err(|_| CaseKeyError {
                    step: "reading (not 32 bytes)",
                    path,
                    source: std::io::ErrorKind::InvalidData.into(),
                })?;
                Ok(Some(CaseBox::new(&raw)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CaseKeyError {
                step: "reading",
                path,
                source,
            }),
        }
    }

    /// The key of `case`, made (durably) if it has none yet.
    pub(crate) fn get_or_create(&self, case: &CaseId) -> Result<CaseBox, CaseKeyError> {
        if let Some(k) = self.get(case)? {
            return Ok(k);
        }
        let path = self.path(case);
        let err = |step| {
            let path = path.clone();
            move |source| CaseKeyError { step, path, source }
        };
        let (raw, key) = CaseBox::generate();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(&raw).map_err(err("writing"))?;
                f.sync_all().map_err(err("syncing"))?;
                sync_dir(&self.dir).map_err(err("syncing the directory of"))?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                .get(case)?
                .ok_or_else(|| err("re-reading")(std::io::ErrorKind::NotFound.into())),
            Err(source) => Err(err("creating")(source)),
        }
    }

    /// Destroys the key of `case`: overwritten, synced, unlinked, directory
    /// synced. Returns whether there was one.
    pub(crate) fn destroy(&self, case: &CaseId) -> Result<bool, CaseKeyError> {
        let path = self.path(case);
        let err = |step| {
            let path = path.clone();
            move |source| CaseKeyError { step, path, source }
        };
        let mut f = match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(err("opening")(source)),
        };
        f.write_all(&[0u8; 32]).map_err(err("overwriting"))?;
        f.sync_all().map_err(err("syncing"))?;
        drop(f);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            // A concurrent destruction (the erasure request and the
            // follower re-applying it) got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(err("removing")(source)),
        }
        sync_dir(&self.dir).map_err(err("syncing the directory of"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_survive_reopen_and_destruction_erases() {
        let dir = tempfile::tempdir().unwrap();
        let keys = CaseKeys::open(&dir.path().join("case-keys")).unwrap();
        let case = CaseId::new();
        assert!(keys.get(&case).unwrap().is_none());
        let boxed = keys
            .get_or_create(&case)
            .unwrap()
            .encrypt(case.as_bytes(), b"Canary")
            .unwrap();
        // A second call and a reopen find the same key.
        let again = CaseKeys::open(&dir.path().join("case-keys")).unwrap();
        let k = again.get_or_create(&case).unwrap();
        assert_eq!(k.decrypt(case.as_bytes(), &boxed).unwrap(), b"Canary");
        assert!(again.destroy(&case).unwrap());
        assert!(!again.destroy(&case).unwrap());
        assert!(again.get(&case).unwrap().is_none());
        assert!(
            std::fs::read_dir(dir.path().join("case-keys"))
                .unwrap()
                .next()
                .is_none()
        );
        // A new key for the case cannot open the old data.
        let fresh = again.get_or_create(&case).unwrap();
        assert!(fresh.decrypt(case.as_bytes(), &boxed).is_err());
    }
}
