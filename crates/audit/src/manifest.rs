//! Pinning the exports' keys to the federation's signed manifest.
//!
//! Without a manifest the audit trusts each export header's own key list
//! (see the crate docs, "Keys"). With one ([`crate::AuditOptions::manifest`],
//! `waymark audit --manifest`), verified against the authority key the
//! auditor pins, the manifest is the authority:
//! - every export's agency must be a member, of the kind the manifest says
//!   (`manifest.unknown_agency`, `manifest.kind_mismatch`);
//! - every key its header lists must be one of that member's manifest keys
//!   (`manifest.key_not_listed`), valid in the header for no longer than in
//!   the manifest, whose windows already end at a suspension or revocation
//!   (`manifest.key_window`);
//! - signatures by other agencies (received events, cosignatures) are
//!   checked with the manifest's keys and windows, not the headers'.
//!
//! The verifier checks an agency's own records with its header keys; since
//! those must lie inside the manifest's windows, a signature the header
//! allows is one the manifest allows. A journal with a manifest finding is
//! critical: its keys are not the federation's.

use waymark_crypto::manifest::VerifiedManifest;
use waymark_crypto::{KeyRing, TrustedKey, timestamp_from_proto};
use waymark_proto::v1::{ExportHeader, PublicKey};
use waymark_types::Timestamp;

use crate::finding::{Finding, Location, Severity, rules};

/// What the manifest says of the header's agency and keys.
pub(crate) fn check_header(m: &VerifiedManifest, h: &ExportHeader) -> Vec<Finding> {
    let at = || Location::journal(&h.agency_id);
    let critical =
        |rule: &str, detail: String| Finding::new(Severity::Critical, rule, at(), detail);
    let Some(member) = m.members.iter().find(|x| x.id.as_str() == h.agency_id) else {
        return vec![critical(
            rules::MANIFEST_UNKNOWN_AGENCY,
            format!(
                "{} is not a member of federation {:?}",
                h.agency_id, m.manifest.federation
            ),
        )];
    };
    let mut out = Vec::new();
    if member.kind.as_str() != h.agency_kind {
        out.push(critical(
            rules::MANIFEST_KIND_MISMATCH,
            format!(
                "the export says kind {:?}, the manifest {}",
                h.agency_kind,
                member.kind.as_str()
            ),
        ));
    }
    for k in &h.keys {
        let Some(listed) = member
            .keys
            .iter()
            .find(|t| t.key.as_bytes().as_slice() == k.ed25519.as_slice())
        else {
            out.push(critical(
                rules::MANIFEST_KEY_NOT_LISTED,
                format!(
                    "header key {} is not one of the manifest's keys for it",
                    k.key_id
                ),
            ));
            continue;
        };
        if let Some(detail) = wider(k, listed) {
            out.push(critical(
                rules::MANIFEST_KEY_WINDOW,
                format!("header key {}: {detail}", k.key_id),
            ));
        }
    }
    out
}

/// Why the header's window for a key is wider than the manifest's, if it is.
fn wider(header: &PublicKey, manifest: &TrustedKey) -> Option<String> {
    let from = header
        .valid_from
        .as_ref()
        .map_or(Timestamp::from_millis(i64::MIN), timestamp_from_proto);
    if from < manifest.valid_from {
        return Some(format!(
            "valid from {from} in the header, from {} in the manifest",
            manifest.valid_from
        ));
    }
    let until = header.valid_until.as_ref().map(timestamp_from_proto);
    match (until, manifest.valid_until) {
        (_, None) => None,
        (None, Some(m)) => Some(format!(
            "still valid in the header, until {m} in the manifest (revoked, rotated or suspended)"
        )),
        (Some(u), Some(m)) if u > m => Some(format!(
            "valid until {u} in the header, until {m} in the manifest"
        )),
        _ => None,
    }
}

/// Every member's keys with the manifest's windows, and their owners.
pub(crate) fn ring(m: &VerifiedManifest) -> (KeyRing, Vec<(String, String)>) {
    let mut ring = KeyRing::new();
    let mut owners = Vec::new();
    for member in &m.members {
        for k in &member.keys {
            let id = ring.insert(k.clone());
            owners.push((id.as_str().to_owned(), member.id.to_string()));
        }
    }
    (ring, owners)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use prost::Message;
    use waymark_crypto::AgencyKey;
    use waymark_crypto::manifest::{Manifest, datetime, load_verified};
    use waymark_proto::v1::{ExportRecord, export_record::Record};
    use waymark_types::{AgencyId, AgencyKind};

    use super::*;
    use crate::{AuditOptions, audit_dir};

    fn headers(dir: &Path) -> Vec<ExportHeader> {
        let mut out = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wmj"))
            .collect();
        files.sort();
        for p in files {
            let bytes = std::fs::read(p).unwrap();
            let mut buf = &bytes[waymark_journal::MAGIC.len()..];
            let rec = ExportRecord::decode_length_delimited(&mut buf).unwrap();
            let Some(Record::Header(h)) = rec.record else {
                panic!("first record is not the header")
            };
            out.push(h);
        }
        out
    }

    /// A manifest listing the exports' agencies and header keys, edited by
    /// `edit`, signed and verified like a node would.
    fn manifest(dir: &Path, edit: impl FnOnce(&mut Manifest)) -> VerifiedManifest {
        let mut m = Manifest::new("test");
        for h in headers(dir) {
            let k = &h.keys[0];
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(&k.ed25519.clone().try_into().unwrap())
                    .unwrap();
            let from = timestamp_from_proto(k.valid_from.as_ref().unwrap());
            let kind: AgencyKind = h.agency_kind.parse().unwrap();
            m.add(AgencyId::new(&h.agency_id).unwrap(), kind, "BG", &key, from);
        }
        edit(&mut m);
        let authority = AgencyKey::generate();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("federation.toml");
        m.write_signed(&path, &authority).unwrap();
        load_verified(&path, &authority.public_key()).unwrap()
    }

    fn rules_found(dir: &Path, m: VerifiedManifest) -> Vec<String> {
        let opts = AuditOptions {
            manifest: Some(m),
            ..AuditOptions::default()
        };
        let report = audit_dir(dir, &opts).unwrap();
        report.findings.iter().map(|f| f.rule.clone()).collect()
    }

    #[test]
    fn exports_are_held_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        crate::synth::write(dir.path(), 4).unwrap();

        // The manifest the federation really has: nothing to report.
        let found = rules_found(dir.path(), manifest(dir.path(), |_| {}));
        assert!(found.is_empty(), "{found:?}");

        // An agency the manifest does not list.
        let found = rules_found(
            dir.path(),
            manifest(dir.path(), |m| {
                m.agencies.retain(|a| a.id.as_str() != "bg-shelter-varna")
            }),
        );
        assert!(
            found.contains(&rules::MANIFEST_UNKNOWN_AGENCY.to_owned()),
            "{found:?}"
        );

        // The police key revoked (its window closed) right after it began,
        // while the police export still claims it valid: the header is
        // held to the manifest, and the shelters' copies of police events
        // signed after the revocation no longer verify.
        let found = rules_found(
            dir.path(),
            manifest(dir.path(), |m| {
                let police = m
                    .agencies
                    .iter_mut()
                    .find(|a| a.id.as_str() == "bg-police-sofia")
                    .unwrap();
                let from =
                    waymark_crypto::manifest::to_timestamp(&police.keys[0].valid_from).unwrap();
                police.keys[0].valid_until =
                    Some(datetime(Timestamp::from_millis(from.millis() + 1)));
            }),
        );
        assert!(
            found.contains(&rules::MANIFEST_KEY_WINDOW.to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&rules::JOURNAL_SIGNATURE_INVALID.to_owned()),
            "{found:?}"
        );

        // A key the manifest never gave the agency.
        let found = rules_found(
            dir.path(),
            manifest(dir.path(), |m| {
                let other = AgencyKey::generate();
                let a = m
                    .agencies
                    .iter_mut()
                    .find(|a| a.id.as_str() == "bg-shelter-sofia")
                    .unwrap();
                a.keys[0].public_key = hex::encode(other.public_key().as_bytes());
            }),
        );
        assert!(
            found.contains(&rules::MANIFEST_KEY_NOT_LISTED.to_owned()),
            "{found:?}"
        );
    }
}
