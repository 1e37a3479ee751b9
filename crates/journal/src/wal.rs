//! The write-ahead log: the journal's durable source of truth.
//!
//! One append-only file of frames, one frame per group commit:
//!
//! ```text
//! frame := magic "WMW1" (4) | body length u32 LE (4) | first 8 bytes of SHA-256(body) | body
//! ```
//!
//! A frame is written with one `write` at the end of the file and then
//! `File::sync_data` (fdatasync: data, file size and the device cache) before
//! the commit returns. Frame k+1 is only written after frame k's sync, so
//! only the last frame can be torn by a crash. Opening the log therefore
//! accepts exactly one kind of damage: an incomplete or checksum-failing
//! *final* frame (or trailing zeros from a size update that outran the data),
//! which is cut off and the cut synced. Damage anywhere else is corruption
//! and opening fails loudly: nothing that was acknowledged is ever dropped.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::store::StoreError;

const MAGIC: &[u8; 4] = b"WMW1";
const HEADER: usize = 16;
/// Largest frame body accepted on read; a larger length field is damage.
const MAX_BODY: usize = 1 << 30;
/// The log is extended in zero-filled chunks of this size, synced once, so
/// that the per-commit `fdatasync` rarely has file-size metadata to write
/// (as database WAL segments are zero-filled in advance).
const PREALLOCATE: u64 = 4 << 20;

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { step, source }
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// An open log positioned at its end.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    /// End of the last frame.
    end: u64,
    /// Length of the file, zero-filled past `end`.
    allocated: u64,
}

/// A frame found on open: where its body lies and the offset just past it.
/// Only positions are kept: replaying a long log must not hold it in
/// memory (an index rebuilt from a 500 MB log once peaked at 1 GB).
pub(crate) struct Frame {
    /// Offset of the body.
    pub(crate) at: u64,
    /// Length of the body.
    pub(crate) len: usize,
    pub(crate) end: u64,
}

impl Frame {
    /// Reads the frame's body from `file` (the log).
    pub(crate) fn body(&self, file: &File) -> Result<Vec<u8>, StoreError> {
        let mut body = vec![0u8; self.len];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut body, self.at)
            .map_err(io("reading a log frame"))?;
        Ok(body)
    }
}

impl Wal {
    /// Opens (or creates) the log and returns the frames that start at or
    /// after `from`, cutting a torn final frame.
    pub(crate) fn open(path: &Path, from: u64) -> Result<(Self, Vec<Frame>), StoreError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("opening the write-ahead log"))?;
        if created {
            file.sync_all()
                .map_err(io("syncing the new write-ahead log"))?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("syncing the journal directory"))?;
            }
        }
        let len = file
            .metadata()
            .map_err(io("reading the log's length"))?
            .len();
        if from > len {
            return Err(StoreError::Corrupt(format!(
                "the index has applied the log up to byte {from} but the log has only {len} bytes"
            )));
        }
        let (frames, good) = scan(&file, from, len)?;
        if good < len && !zeros(&file, good, len)? {
            // A torn final frame (never acknowledged) or the zero-filled
            // preallocation: zero it all so a later scan stops at `good`.
            file.seek(SeekFrom::Start(good))
                .map_err(io("seeking to the log's end"))?;
            file.write_all(&vec![0u8; usize::try_from(len - good).unwrap_or(0)])
                .map_err(io("clearing a torn final frame"))?;
            file.sync_all()
                .map_err(io("syncing the cleared log tail"))?;
        }
        file.seek(SeekFrom::Start(good))
            .map_err(io("seeking to the log's end"))?;
        Ok((
            Self {
                file,
                end: good,
                allocated: len,
            },
            frames,
        ))
    }

    /// Offset past the last frame: the bytes of log written so far.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Appends one frame and syncs it. Returns the offset past the frame.
    pub(crate) fn append(&mut self, body: &[u8]) -> Result<u64, StoreError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_BODY)
            .ok_or_else(|| StoreError::BadBatch("a commit larger than 1 GiB".into()))?;
        let mut frame = Vec::with_capacity(HEADER + body.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&checksum(body));
        frame.extend_from_slice(body);
        let need = self.end + frame.len() as u64;
        if need > self.allocated {
            self.preallocate(need)?;
        }
        self.file
            .write_all(&frame)
            .map_err(io("writing a log frame"))?;
        self.file.sync_data().map_err(io("fdatasync of the log"))?;
        self.end += frame.len() as u64;
        Ok(self.end)
    }
}

impl Wal {
    /// Zero-fills the log up to a multiple of [`PREALLOCATE`] past `need`
    /// and syncs it (data and size), then returns to the end of the frames.
    fn preallocate(&mut self, need: u64) -> Result<(), StoreError> {
        let target = need
            .div_ceil(PREALLOCATE)
            .saturating_add(1)
            .saturating_mul(PREALLOCATE);
        self.file
            .seek(SeekFrom::Start(self.allocated))
            .map_err(io("seeking to preallocate the log"))?;
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.allocated;
        while at < target {
            let n = usize::try_from((target - at).min(zeros.len() as u64)).unwrap_or(zeros.len());
            self.file
                .write_all(&zeros[..n])
                .map_err(io("preallocating the log"))?;
            at += n as u64;
        }
        self.file
            .sync_all()
            .map_err(io("syncing the preallocated log"))?;
        self.allocated = target;
        self.file
            .seek(SeekFrom::Start(self.end))
            .map_err(io("seeking to the log's end"))?;
        Ok(())
    }
}

/// Whether the log holds only zero bytes from `from` to `to`.
fn zeros(file: &File, from: u64, to: u64) -> Result<bool, StoreError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = usize::try_from((to - at).min(buf.len() as u64)).unwrap_or(buf.len());
        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf[..n], at)
            .map_err(io("reading the log"))?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Finds the frames of the log (`len` bytes) from offset `from`, reading one
/// frame at a time; returns them and the offset where the valid log ends.
fn scan(file: &File, from: u64, len: u64) -> Result<(Vec<Frame>, u64), StoreError> {
    use std::os::unix::fs::FileExt;
    let mut frames = Vec::new();
    let mut pos = from;
    let mut body = Vec::new();
    while pos < len {
        if len - pos < HEADER as u64 {
            break; // Zero-filled space, or the final frame's header cut short.
        }
        let mut head = [0u8; HEADER];
        file.read_exact_at(&mut head, pos)
            .map_err(io("reading the log"))?;
        if &head[..4] != MAGIC {
            if zeros(file, pos + 4, len)? {
                break; // Zero-filled space, or a torn header followed by it.
            }
            return Err(StoreError::Corrupt(format!(
                "log frame at byte {pos} has no magic"
            )));
        }
        let n = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if n > MAX_BODY {
            return Err(StoreError::Corrupt(format!(
                "log frame at byte {pos} claims {n} bytes"
            )));
        }
        let end = pos + (HEADER + n) as u64;
        if end > len {
            break; // The final frame was cut short.
        }
        body.resize(n, 0);
        file.read_exact_at(&mut body, pos + HEADER as u64)
            .map_err(io("reading the log"))?;
        if head[8..16] != checksum(&body) {
            if zeros(file, end, len)? {
                break; // The final frame is torn.
            }
            return Err(StoreError::Corrupt(format!(
                "log frame at byte {pos} fails its checksum and is not the last frame"
            )));
        }
        frames.push(Frame {
            at: pos + HEADER as u64,
            len: n,
            end,
        });
        pos = end;
    }
    Ok((frames, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_file(path: &Path) -> File {
        File::open(path).unwrap()
    }

    #[test]
    fn torn_tails_are_cut_and_middle_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, frames) = Wal::open(&path, 0).unwrap();
        assert!(frames.is_empty());
        let e1 = wal.append(b"first").unwrap();
        let e2 = wal.append(b"second").unwrap();
        drop(wal);
        let full = std::fs::read(&path).unwrap()[..e2 as usize].to_vec();
        // Every cut inside the second frame keeps exactly the first one.
        for cut in (e1 as usize)..(e2 as usize) {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut wal, frames) = Wal::open(&path, 0).unwrap();
            assert_eq!(frames.len(), 1, "cut at {cut}");
            assert_eq!(wal.end, e1);
            // Appending after the cut works and survives a reopen.
            wal.append(b"again").unwrap();
            drop(wal);
            assert_eq!(Wal::open(&path, 0).unwrap().1.len(), 2, "cut at {cut}");
        }
        // Zeros after the last frame (size updated, data not) are cut too.
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &zeros).unwrap();
        assert_eq!(Wal::open(&path, 0).unwrap().1.len(), 2);
        // A bad last frame is torn; a bad first frame is corruption.
        let mut bad_last = full.clone();
        *bad_last.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bad_last).unwrap();
        assert_eq!(Wal::open(&path, 0).unwrap().1.len(), 1);
        let mut bad_first = full.clone();
        bad_first[HEADER] ^= 1;
        std::fs::write(&path, &bad_first).unwrap();
        assert!(matches!(Wal::open(&path, 0), Err(StoreError::Corrupt(_))));
        std::fs::write(&path, &full).unwrap();
        let (_, frames) = Wal::open(&path, e1).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].body(&wal_file(&path)).unwrap(), b"second");
        assert!(matches!(
            Wal::open(&path, e2 + 1),
            Err(StoreError::Corrupt(_))
        ));
    }
}
