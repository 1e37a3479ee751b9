//! The analysis pass: every export streamed at once and merged by the
//! entries' `recorded_at` (each journal's own order is kept), so the policy
//! replay sees the federation's events in the order they were recorded and
//! two-party links close moments after they open.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_proto::v1::{EntryKind, Envelope, Event};
use waymark_types::CaseId;

use crate::finding::{Finding, Location, Severity, rules};
use crate::keys::Keys;
use crate::links::Links;
use crate::replay::{Replayer, Track};
use crate::source::{Counting, Entry, Item, Records, open_records};
use crate::timeline::CaseTimeline;
use crate::witness::Witness;

/// Per-journal counts from the analysis pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub(crate) entries: u64,
    pub(crate) originated: u64,
    pub(crate) received: u64,
    pub(crate) witnessed: u64,
    pub(crate) quarantined: u64,
    pub(crate) unverified: u64,
}

/// What the analysis found.
pub(crate) struct Analysis {
    pub(crate) findings: Vec<Finding>,
    pub(crate) timelines: BTreeMap<CaseId, CaseTimeline>,
    pub(crate) counts: HashMap<String, Counts>,
    pub(crate) cases: usize,
    pub(crate) events_applied: u64,
}

struct Stream {
    agency: String,
    records: Records<Counting<BufReader<File>>>,
    head: Option<Box<Entry>>,
}

/// Runs the analysis over `journals` (agency, path), all assumed verified;
/// `exported` holds each agency's export time (ms, from its header).
pub(crate) fn analyse(
    journals: &[(String, &Path)],
    exported: &HashMap<String, i64>,
    keys: &Keys,
    track: Track,
    counter: Option<Arc<AtomicU64>>,
) -> Analysis {
    let present: HashSet<String> = journals.iter().map(|j| j.0.clone()).collect();
    let mut cx = Cx {
        keys,
        present: present.clone(),
        witness: Witness::default(),
        links: Links::new(present.clone()),
        replay: Replayer::new(track),
        counts: HashMap::new(),
    };
    let mut streams: Vec<Stream> = journals
        .iter()
        .filter_map(|(a, p)| {
            Some(Stream {
                agency: a.clone(),
                records: open_records(p, counter.clone()).ok()?,
                head: None,
            })
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, s) in streams.iter_mut().enumerate() {
        cx.advance(s);
        if let Some(h) = &s.head {
            heap.push(Reverse((h.recorded_at, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let s = &mut streams[i];
        if let Some(e) = s.head.take() {
            let agency = s.agency.clone();
            cx.entry(&agency, e);
        }
        cx.advance(s);
        if let Some(h) = &s.head {
            heap.push(Reverse((h.recorded_at, i)));
        }
    }
    let paths: HashMap<String, (&Path, u64, i64)> = journals
        .iter()
        .map(|(a, p)| {
            let n = cx.counts.get(a).map_or(0, |c| c.entries);
            let at = exported.get(a).copied().unwrap_or(i64::MAX);
            (a.clone(), (*p, n, at))
        })
        .collect();
    let mut findings = cx.witness.finish(&paths, &present);
    findings.extend(cx.links.finish());
    let cases = cx.replay.cases();
    let events_applied = cx.replay.events_applied;
    let (replay_findings, timelines) = cx.replay.finish();
    findings.extend(replay_findings);
    for (agency, c) in &cx.counts {
        if c.unverified > 0 {
            findings.push(Finding::new(
                Severity::Info,
                rules::JOURNAL_UNVERIFIED_SIGNATURES,
                Location::journal(agency),
                format!(
                    "{} signature(s) by agencies without an export here were not checked",
                    c.unverified
                ),
            ));
        }
    }
    Analysis {
        findings,
        timelines,
        counts: cx.counts,
        cases,
        events_applied,
    }
}

struct Cx<'k> {
    keys: &'k Keys,
    present: HashSet<String>,
    witness: Witness,
    links: Links,
    replay: Replayer,
    counts: HashMap<String, Counts>,
}

impl Cx<'_> {
    /// Reads up to the next entry, handling checkpoints and cosignatures.
    fn advance(&mut self, s: &mut Stream) {
        while let Some(item) = s.records.next_item() {
            match item {
                Item::Entry(e) => {
                    s.head = Some(e);
                    return;
                }
                Item::Checkpoint(env) => self.witness.own_checkpoint(&s.agency, &env),
                Item::Cosignature(env) => self.witness.cosignature(&s.agency, &env),
            }
        }
    }

    fn entry(&mut self, agency: &str, e: Box<Entry>) {
        let seq = e.seq;
        let entry = e.entry;
        let loc = Location::entry(agency, seq).with_case(&entry.case_id);
        let counts = self.counts.entry(agency.to_owned()).or_default();
        counts.entries += 1;
        match EntryKind::try_from(entry.kind).unwrap_or(EntryKind::Unspecified) {
            k @ (EntryKind::Originated | EntryKind::Received) => {
                let originated = k == EntryKind::Originated;
                if originated {
                    counts.originated += 1;
                } else {
                    counts.received += 1;
                }
                let Ok(env) = Envelope::decode(entry.envelope.as_slice()) else {
                    return;
                };
                let Ok(ev) = Event::decode(env.payload.as_slice()) else {
                    return;
                };
                let loc = loc.with_event(&ev.event_id);
                self.attribution(agency, originated, &env, &ev, &loc);
                let hash: [u8; 32] = Sha256::digest(&entry.envelope).into();
                self.links.on_event(agency, originated, &ev, hash, &loc);
                let authoritative = originated || !self.present.contains(&ev.sender_id);
                self.replay
                    .on_event(self.keys, &loc, e.recorded_at, &ev, authoritative);
            }
            EntryKind::CheckpointWitnessed => {
                counts.witnessed += 1;
                self.witness
                    .witnessed(self.keys, agency, seq, &entry.envelope);
            }
            EntryKind::Equivocation => {
                if let Some(eq) = &entry.equivocation {
                    self.witness.equivocation(self.keys, agency, seq, eq);
                }
            }
            EntryKind::Quarantined => {
                counts.quarantined += 1;
                let q = entry.quarantine.unwrap_or_default();
                self.replay_free_finding(Finding::new(
                    Severity::Info,
                    rules::JOURNAL_QUARANTINED,
                    loc,
                    format!(
                        "quarantined a message from {} ({}): {}",
                        q.claimed_sender, q.reason, q.detail
                    ),
                ));
            }
            EntryKind::Unspecified => {}
        }
    }

    fn replay_free_finding(&mut self, f: Finding) {
        self.links.findings.push(f);
    }

    /// The event is in the right journal and signed by its sender's key.
    fn attribution(
        &mut self,
        agency: &str,
        originated: bool,
        env: &Envelope,
        ev: &Event,
        loc: &Location,
    ) {
        let wrong = if originated {
            (ev.sender_id != agency)
                .then(|| format!("originated here but signed as {}", ev.sender_id))
        } else {
            (ev.recipient_id != agency)
                .then(|| format!("received here but addressed to {:?}", ev.recipient_id))
        };
        if let Some(m) = wrong {
            self.links.findings.push(Finding::new(
                Severity::Error,
                rules::JOURNAL_MISATTRIBUTED,
                loc.clone(),
                m,
            ));
        }
        for s in &env.signatures {
            match self.keys.owner(&s.key_id) {
                Some(owner) if owner != ev.sender_id => {
                    self.links.findings.push(Finding::new(
                        Severity::Critical,
                        rules::JOURNAL_SIGNER_MISMATCH,
                        loc.clone(),
                        format!(
                            "event from {} signed with {owner}'s key {}",
                            ev.sender_id, s.key_id
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    if let Some(c) = self.counts.get_mut(agency) {
                        c.unverified += 1;
                    }
                }
            }
        }
    }
}
