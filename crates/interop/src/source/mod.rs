//! Verified journal exports, and the signed events of one case in them.
//!
//! [`Exports::open`] reads every export's header, builds one key ring from
//! all of them, and verifies each file whole with the journal crate's
//! streaming verifier before anything else is read: chain, Merkle
//! checkpoints, signed trailer, and the signatures of every event whose
//! sender has an export here. An export that does not verify is an error;
//! nothing is exported from a journal that may have been altered.
//!
//! [`Exports::case`] then walks the files again and keeps, for one case,
//! one copy of each signed event, checked once more on its own: the entry
//! is in the right journal (originated by its sender, or received by its
//! recipient), every signature verifies with a key *of the sender* valid at
//! `occurred_at`, and the event has the shape the protocol requires
//! (`waymark_policy::wire`). A forwarded event contributes its inner event,
//! checked the same way against the originator's key. Events that fail are
//! left out and listed in [`CaseRecord::skipped`], never repaired.

mod gather;
mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use waymark_crypto::KeyRing;
use waymark_journal::verify_export;
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1::{Event, Signature};
use waymark_types::{AgencyKind, CaseId, EventKind, Timestamp};

use self::gather::Gather;
use self::reader::{for_each_entry, read_header};
use crate::InteropError;

/// One verified export file.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// Its path.
    pub path: PathBuf,
    /// The exporting agency.
    pub agency: String,
    /// The exporting agency's kind, if the header's token is known.
    pub kind: Option<AgencyKind>,
    /// When the export was made.
    pub exported_at: Timestamp,
    /// Entries verified.
    pub entries: u64,
}

/// A set of verified exports.
#[derive(Debug)]
pub struct Exports {
    files: Vec<ExportFile>,
    keys: KeyRing,
    /// key id → owning agency.
    owners: BTreeMap<String, String>,
}

/// What a signed event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fact of this kind.
    Event(EventKind),
    /// Another agency's signed event passed on whole.
    Forwarded,
}

impl Kind {
    /// The Waymark token (`referral_requested`, `forwarded`).
    pub fn token(self) -> &'static str {
        match self {
            Kind::Event(k) => k.as_str(),
            Kind::Forwarded => "forwarded",
        }
    }
}

/// One signed event of the case, as journaled.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    /// The event, decoded from the signed payload.
    pub event: Event,
    /// Its kind.
    pub kind: Kind,
    /// `occurred_at`.
    pub occurred_at: Timestamp,
    /// The envelope's signatures (all verified).
    pub signatures: Vec<Signature>,
    /// SHA-256 of the envelope encoding as journaled.
    pub envelope_sha256: [u8; 32],
    /// The journal the copy used here was read from: the sender's own when
    /// its export is present, else the recipient's.
    pub journal: String,
    /// The entry's seq in that journal (for an event learned from a
    /// forward, the forward's entry).
    pub seq: u64,
    /// When that journal recorded the entry.
    pub recorded_at: Timestamp,
}

/// An event left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The journal it was read from.
    pub journal: String,
    /// The entry seq.
    pub seq: u64,
    /// The event id, if it could be read.
    pub event_id: String,
    /// Why it was left out.
    pub reason: String,
}

/// The verified signed events of one case across a set of exports.
#[derive(Debug, Clone)]
pub struct CaseRecord {
    /// The case.
    pub case: CaseId,
    /// The newest `exported_at` of the exports read: the history is as of
    /// then.
    pub as_of: Timestamp,
    /// Every agency the exports or the events name, with its kind when known.
    pub agencies: BTreeMap<String, Option<AgencyKind>>,
    /// One copy per event id, ordered by `occurred_at`, then event id.
    pub events: Vec<SignedEvent>,
    /// Events left out.
    pub skipped: Vec<Skipped>,
    /// The Ed25519 public keys (key id → key) that signed the events kept.
    pub public_keys: BTreeMap<String, [u8; 32]>,
}

impl CaseRecord {
    /// The event with this id.
    pub fn event(&self, id: &str) -> Option<&SignedEvent> {
        self.events.iter().find(|e| e.event.event_id == id)
    }
}

impl Exports {
    /// Opens and verifies every `*.wmj` file of `dir`, in name order.
    ///
    /// # Errors
    /// [`InteropError::NoExports`] if there is none; see [`Exports::open`].
    pub fn open_dir(dir: &Path) -> Result<Self, InteropError> {
        let io = |source| InteropError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wmj") && p.is_file())
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(InteropError::NoExports(dir.to_owned()));
        }
        Self::open(&paths)
    }

    /// Opens and verifies the exports at `paths`, each with the keys of
    /// every header (so events of agencies with an export here are checked
    /// in every journal that holds them).
    ///
    /// # Errors
    /// [`InteropError::Io`], [`InteropError::BadHeader`] or
    /// [`InteropError::Unverified`] for the first file that fails.
    pub fn open(paths: &[PathBuf]) -> Result<Self, InteropError> {
        let mut keys = KeyRing::new();
        let mut owners = BTreeMap::new();
        let mut headers = Vec::new();
        for path in paths {
            let h = read_header(path)?;
            keys.insert_public_keys(&h.keys)
                .map_err(|e| InteropError::BadHeader {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            for k in &h.keys {
                owners
                    .entry(k.key_id.clone())
                    .or_insert_with(|| h.agency_id.clone());
            }
            headers.push(h);
        }
        let mut files = Vec::new();
        for (path, h) in paths.iter().zip(headers) {
            let f = File::open(path).map_err(|source| InteropError::Io {
                path: path.clone(),
                source,
            })?;
            let summary =
                verify_export(BufReader::with_capacity(1 << 16, f), &keys).map_err(|failure| {
                    InteropError::Unverified {
                        path: path.clone(),
                        failure,
                    }
                })?;
            files.push(ExportFile {
                path: path.clone(),
                kind: h.agency_kind.parse().ok(),
                exported_at: h
                    .exported_at
                    .as_ref()
                    .and_then(timestamp_from_proto)
                    .unwrap_or_default(),
                agency: h.agency_id,
                entries: summary.entries,
            });
        }
        Ok(Self {
            files,
            keys,
            owners,
        })
    }

    /// The verified files.
    pub fn files(&self) -> &[ExportFile] {
        &self.files
    }

    /// Every case id named by an entry of these exports, in order.
    ///
    /// # Errors
    /// [`InteropError::Io`] if a file cannot be read again.
    pub fn cases(&self) -> Result<BTreeSet<CaseId>, InteropError> {
        let mut out = BTreeSet::new();
        for f in &self.files {
            for_each_entry(&f.path, |e| {
                if let Ok(c) = CaseId::parse(&e.case_id) {
                    out.insert(c);
                }
            })?;
        }
        Ok(out)
    }

    /// The verified signed events of `case`.
    ///
    /// # Errors
    /// [`InteropError::Io`] if a file cannot be read again;
    /// [`InteropError::UnknownCase`] if no export holds an event of it.
    pub fn case(&self, case: &CaseId) -> Result<CaseRecord, InteropError> {
        let wanted = case.to_string();
        let mut g = Gather {
            exports: self,
            case: wanted.clone(),
            best: BTreeMap::new(),
            skipped: Vec::new(),
            agencies: BTreeMap::new(),
            public_keys: BTreeMap::new(),
        };
        for f in &self.files {
            g.agencies.insert(f.agency.clone(), f.kind);
        }
        for f in &self.files {
            for_each_entry(&f.path, |e| {
                if e.case_id == wanted {
                    g.entry(&f.agency, e);
                }
            })?;
        }
        if g.best.is_empty() && g.skipped.is_empty() {
            return Err(InteropError::UnknownCase(*case));
        }
        let mut events: Vec<SignedEvent> = g.best.into_values().map(|(_, e)| e).collect();
        events.sort_by(|a, b| {
            (a.occurred_at, &a.event.event_id).cmp(&(b.occurred_at, &b.event.event_id))
        });
        Ok(CaseRecord {
            case: *case,
            as_of: self
                .files
                .iter()
                .map(|f| f.exported_at)
                .max()
                .unwrap_or_default(),
            agencies: g.agencies,
            events,
            skipped: g.skipped,
            public_keys: g.public_keys,
        })
    }
}
