//! The audit tests' fixture: a real `waymark demo` federation, then
//! witnessing added with the journal API (each agency journals the others'
//! latest checkpoint as CHECKPOINT_WITNESSED and cosigns it), then exported.
//! Helpers rebuild one agency's export through the journal API to plant
//! tampering that an agency itself could commit.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{AgencyKey, KeyRing, TrustedKey, proto_from_timestamp, sign_envelope};
use waymark_journal::{ExportMeta, Journal, JournalConfig, SledConfig, SledStore, export, import};
use waymark_proto::v1 as pb;
use waymark_proto::{PAYLOAD_TYPE_COSIGNATURE, PAYLOAD_TYPE_EVENT};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

/// The demo's agencies.
/// The agencies of the sample federation `waymark demo` runs.
pub(crate) const AGENCIES: [(&str, AgencyKind); 6] = [
    ("bg-police-sofia", AgencyKind::Police),
    ("bg-shelter-sofia", AgencyKind::Shelter),
    ("bg-shelter-varna", AgencyKind::Shelter),
    ("bg-ngo-outreach", AgencyKind::Ngo),
    ("iom-return-sofia", AgencyKind::ReturnDesk),
    ("bg-labour-ministry", AgencyKind::Labour),
];
pub(crate) const POLICE: &str = "bg-police-sofia";

/// A witnessed demo federation in a temp dir.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    /// The witnessed, untampered exports.
    pub(crate) clean: PathBuf,
    pub(crate) keys: BTreeMap<String, AgencyKey>,
    pub(crate) ring: KeyRing,
}

pub(crate) fn open_journal(dir: &Path, agency: &str, key: &AgencyKey) -> Journal<SledStore> {
    let store = SledStore::open(dir, &SledConfig::default()).unwrap();
    Journal::open(
        store,
        JournalConfig::new(AgencyId::new(agency).unwrap()),
        Some(key.clone()),
    )
    .unwrap()
}

pub(crate) fn meta(key: &AgencyKey, kind: AgencyKind) -> ExportMeta {
    ExportMeta {
        agency_kind: kind,
        keys: vec![pb::PublicKey {
            key_id: key.key_id().to_string(),
            ed25519: key.public_key().as_bytes().to_vec(),
            valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
            valid_until: None,
        }],
        exported_at: Timestamp::now(),
    }
}

fn kind_of(agency: &str) -> AgencyKind {
    AGENCIES.iter().find(|a| a.0 == agency).unwrap().1
}

pub(crate) fn write_export(j: &Journal<SledStore>, key: &AgencyKey, agency: &str, path: &Path) {
    let mut w = BufWriter::new(File::create(path).unwrap());
    export(j, &mut w, &meta(key, kind_of(agency))).unwrap();
}

/// Signs a cosignature of `ckpt` by `witness`.
pub(crate) fn cosign(
    witness: &str,
    key: &AgencyKey,
    ckpt: &pb::Envelope,
    now: Timestamp,
) -> pb::Envelope {
    let c = pb::Checkpoint::decode(ckpt.payload.as_slice()).unwrap();
    let cosig = pb::Cosignature {
        witness_agency_id: witness.into(),
        checkpoint_hash: Sha256::digest(&ckpt.payload).to_vec(),
        agency_id: c.agency_id,
        size: c.size,
        root_hash: c.root_hash,
        witnessed_at: Some(proto_from_timestamp(now)),
    };
    sign_envelope(key, PAYLOAD_TYPE_COSIGNATURE, cosig.encode_to_vec())
}

impl Fixture {
    /// Runs the real binary's demo and adds witnessing.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("demo");
        let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(["demo", "--cases", "10", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut keys = BTreeMap::new();
        let mut ring = KeyRing::new();
        for (a, _) in AGENCIES {
            let k = AgencyKey::load(&data.join("agencies").join(a).join("signing.key")).unwrap();
            ring.insert(TrustedKey {
                key: k.public_key(),
                valid_from: Timestamp::from_millis(0),
                valid_until: None,
            });
            keys.insert(a.to_owned(), k);
        }
        let journals: Vec<_> = AGENCIES
            .iter()
            .map(|(a, _)| {
                open_journal(&data.join("agencies").join(a).join("journal"), a, &keys[*a])
            })
            .collect();
        let now = Timestamp::now();
        for (i, (a, _)) in AGENCIES.iter().enumerate() {
            let ckpt = journals[i].latest_checkpoint().unwrap().unwrap();
            for (w, (wa, _)) in AGENCIES.iter().enumerate() {
                if w == i {
                    continue;
                }
                journals[w]
                    .append_witnessed(&ckpt.encode_to_vec(), now)
                    .unwrap();
                let env = cosign(wa, &keys[*wa], &ckpt, now);
                journals[i].add_cosignature(&env, &ring).unwrap();
            }
            let _ = a;
        }
        let clean = dir.path().join("clean");
        std::fs::create_dir_all(&clean).unwrap();
        for (i, (a, _)) in AGENCIES.iter().enumerate() {
            journals[i].checkpoint_now(now).unwrap();
            write_export(&journals[i], &keys[*a], a, &clean.join(format!("{a}.wmj")));
        }
        Self {
            dir,
            clean,
            keys,
            ring,
        }
    }

    /// A copy of the clean exports in a new directory.
    pub(crate) fn variant(&self, name: &str) -> PathBuf {
        let v = self.dir.path().join(name);
        std::fs::create_dir_all(&v).unwrap();
        for (a, _) in AGENCIES {
            let f = format!("{a}.wmj");
            std::fs::copy(self.clean.join(&f), v.join(&f)).unwrap();
        }
        v
    }

    /// Imports `agency`'s clean export into a fresh journal, lets `f` append
    /// to it (as the agency could), and exports it into `variant`.
    pub(crate) fn append_to(
        &self,
        variant: &Path,
        agency: &str,
        f: impl FnOnce(&Journal<SledStore>),
    ) {
        let store_dir = self
            .dir
            .path()
            .join(format!("{}-{agency}", variant.display()).replace('/', "_"));
        let store = SledStore::open(&store_dir, &SledConfig::default()).unwrap();
        let file = BufReader::new(File::open(self.clean.join(format!("{agency}.wmj"))).unwrap());
        import(file, &store, &self.ring).unwrap();
        let j = Journal::open(
            store,
            JournalConfig::new(AgencyId::new(agency).unwrap()),
            Some(self.keys[agency].clone()),
        )
        .unwrap();
        f(&j);
        j.checkpoint_now(Timestamp::now()).unwrap();
        write_export(
            &j,
            &self.keys[agency],
            agency,
            &variant.join(format!("{agency}.wmj")),
        );
    }

    /// Signs `event` as `agency` (event id, sender, time and rule set filled in).
    pub(crate) fn sign(&self, agency: &str, mut event: pb::Event, at: Timestamp) -> Vec<u8> {
        event.event_id = waymark_types::EventId::new().to_string();
        event.sender_id = agency.into();
        event.sender_kind = i32::from(waymark_policy::wire::vocab::agency_kind_to_proto(kind_of(
            agency,
        )));
        event.occurred_at = Some(proto_from_timestamp(at));
        event.rule_set = "coe-cets197@1".into();
        sign_envelope(
            &self.keys[agency],
            PAYLOAD_TYPE_EVENT,
            event.encode_to_vec(),
        )
        .encode_to_vec()
    }
}

/// Export records of a file with their byte ranges (whole record incl. prefix).
pub(crate) fn records(bytes: &[u8]) -> Vec<(std::ops::Range<usize>, pb::ExportRecord)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let mut len = 0usize;
        let mut i = at;
        let mut shift = 0;
        loop {
            let b = bytes[i];
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let rec = pb::ExportRecord::decode(&bytes[i..i + len]).unwrap();
        out.push((at..i + len, rec));
        at = i + len;
    }
    out
}

/// The byte range of the entry record with `seq`, and the entry.
pub(crate) fn entry_record(bytes: &[u8], seq: u64) -> (std::ops::Range<usize>, pb::JournalEntry) {
    records(bytes)
        .into_iter()
        .find_map(|(r, rec)| match rec.record {
            Some(pb::export_record::Record::Entry(b)) => {
                let e = pb::JournalEntry::decode(b.as_slice()).unwrap();
                (e.seq == seq).then_some((r, e))
            }
            _ => None,
        })
        .unwrap()
}

/// Position of `needle` inside `hay[range]`.
pub(crate) fn find_in(hay: &[u8], range: std::ops::Range<usize>, needle: &[u8]) -> usize {
    range.start
        + hay[range]
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle in record")
}
