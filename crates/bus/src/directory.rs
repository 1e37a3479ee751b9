//! The federation directory: which agencies exist, their kinds, and the keys
//! each may sign with (with validity windows).
//!
//! Issue 8 loads it from a signed federation manifest; the bus only needs
//! this injectable value. A key belongs to exactly one agency: the directory
//! answers "who signed this?" from the key id, so a message signed by one
//! agency but claiming another as sender is caught.

use std::collections::HashMap;

use waymark_crypto::seal::RecipientKey;
use waymark_crypto::{KeyId, KeyRing, TrustedKey, VerifyError};
use waymark_proto::v1::Envelope;
use waymark_types::{AgencyId, AgencyKind, Timestamp};

use crate::quarantine::{Reason, Rejection};

/// One member agency.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its kind.
    pub kind: AgencyKind,
    /// Its signing keys, current and past, with validity windows.
    pub keys: KeyRing,
    /// Its X25519 encryption keys (personal data is sealed to these).
    pub encryption_keys: Vec<RecipientKey>,
}

/// Agencies by id, and the owner of every key.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    members: HashMap<AgencyId, Member>,
    owners: HashMap<KeyId, AgencyId>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or extends) `agency` of `kind` with `keys`. A key registered
    /// again under another agency moves to it: one key, one owner.
    pub fn insert(
        &mut self,
        agency: AgencyId,
        kind: AgencyKind,
        keys: impl IntoIterator<Item = TrustedKey>,
    ) {
        let m = self
            .members
            .entry(agency.clone())
            .or_insert_with(|| Member {
                kind,
                keys: KeyRing::new(),
                encryption_keys: Vec::new(),
            });
        m.kind = kind;
        for k in keys {
            let id = m.keys.insert(k);
            // Ownership is decided by `owners`: a key re-registered under
            // another agency no longer verifies as the first one.
            self.owners.insert(id, agency.clone());
        }
    }

    /// Lists `keys` as encryption keys of `agency` (a known member; an
    /// unknown one is ignored: it could not be sent anything anyway).
    pub fn insert_encryption_keys(
        &mut self,
        agency: &AgencyId,
        keys: impl IntoIterator<Item = RecipientKey>,
    ) {
        if let Some(m) = self.members.get_mut(agency) {
            m.encryption_keys.extend(keys);
        }
    }

    /// The encryption key to seal data for `agency` to at `at`: of its keys
    /// valid then, the most recent.
    pub fn encryption_key(&self, agency: &AgencyId, at: Timestamp) -> Option<&RecipientKey> {
        self.members
            .get(agency)?
            .encryption_keys
            .iter()
            .filter(|k| k.valid_at(at))
            .max_by_key(|k| k.valid_from)
    }

    /// The member `agency`, if known.
    pub fn member(&self, agency: &AgencyId) -> Option<&Member> {
        self.members.get(agency)
    }

    /// The kind of `agency`, if known.
    pub fn kind(&self, agency: &AgencyId) -> Option<AgencyKind> {
        self.members.get(agency).map(|m| m.kind)
    }

    /// The agency owning `key`.
    pub fn owner(&self, key: &KeyId) -> Option<&AgencyId> {
        self.owners.get(key)
    }

    /// A ring of every key of every member (to check witness cosignatures).
    pub fn all_keys(&self, of: &[&AgencyId]) -> KeyRing {
        let mut ring = KeyRing::new();
        for a in of {
            if let Some(m) = self.members.get(*a) {
                for id in self.owners.iter().filter(|(_, o)| o == a).map(|(k, _)| k) {
                    if let Some(k) = m.keys.get(id) {
                        ring.insert(k.clone());
                    }
                }
            }
        }
        ring
    }

    /// Verifies the signatures of many envelopes of `payload_type` at once,
    /// one Ed25519 batch equation per signing agency
    /// ([`KeyRing::verify_batch`], about twice as fast as one by one).
    /// Returns, per envelope, whether it is known good: every check of
    /// [`Directory::verify`] but the count of signatures passed. `false`
    /// says nothing (an unknown key, or a group with a bad signature): such
    /// an envelope goes through [`Directory::verify`], which tells why.
    pub fn verify_batch(&self, items: &[(&Envelope, Timestamp)], payload_type: &str) -> Vec<bool> {
        let mut ok = vec![false; items.len()];
        let mut groups: HashMap<&AgencyId, Vec<usize>> = HashMap::new();
        for (i, (env, _)) in items.iter().enumerate() {
            let owner = env
                .signatures
                .first()
                .and_then(|s| KeyId::parse(&s.key_id).ok())
                .and_then(|id| self.owners.get(&id));
            if let Some(o) = owner {
                groups.entry(o).or_default().push(i);
            }
        }
        for (owner, members) in groups {
            let Some(m) = self.members.get(owner) else {
                continue;
            };
            let batch: Vec<_> = members
                .iter()
                .map(|&i| (items[i].0, payload_type, items[i].1))
                .collect();
            if m.keys.verify_batch(&batch).is_ok() {
                for i in members {
                    ok[i] = true;
                }
            }
        }
        ok
    }

    /// [`Directory::verify`] of an envelope [`Directory::verify_batch`]
    /// found good: the signature count and the owner, without the curve
    /// arithmetic again.
    ///
    /// # Errors
    /// As [`Directory::verify`].
    pub fn owner_of_verified(&self, env: &Envelope) -> Result<AgencyId, Rejection> {
        self.sole_signer(env).cloned()
    }

    /// The owner of the key of an envelope's only signature: `bad_signature`
    /// for no or several signatures, `unknown_sender` for a key no member
    /// owns.
    fn sole_signer(&self, env: &Envelope) -> Result<&AgencyId, Rejection> {
        let [sig] = env.signatures.as_slice() else {
            return Err(Rejection::new(
                Reason::BadSignature,
                format!(
                    "{} signatures where exactly one is required",
                    env.signatures.len()
                ),
            ));
        };
        KeyId::parse(&sig.key_id)
            .ok()
            .and_then(|id| self.owners.get(&id))
            .ok_or_else(|| unknown_key(&sig.key_id))
    }

    /// Verifies an envelope carrying exactly one signature, of
    /// `payload_type`, signed at `at`, and returns the agency owning the key.
    ///
    /// # Errors
    /// A [`Rejection`]: `wrong_payload_type`, `bad_signature` (no or several
    /// signatures, or one that does not verify), `unknown_sender` (a key no
    /// member owns), `revoked_key` (outside its validity window).
    pub fn verify(
        &self,
        env: &Envelope,
        payload_type: &str,
        at: Timestamp,
    ) -> Result<AgencyId, Rejection> {
        if env.payload_type != payload_type {
            return Err(Rejection::new(
                Reason::WrongPayloadType,
                format!("payload type {:.80?}", env.payload_type),
            ));
        }
        let owner = self.sole_signer(env)?;
        let unknown = || unknown_key(&env.signatures[0].key_id);
        let member = self.members.get(owner).ok_or_else(unknown)?;
        match member.keys.verify(env, payload_type, at) {
            Ok(_) => Ok(owner.clone()),
            Err(VerifyError::KeyNotValidAt { key_id, at, .. }) => Err(Rejection::new(
                Reason::RevokedKey,
                format!("key {key_id} of {owner} is not valid at {at}"),
            )),
            Err(VerifyError::UnknownKey { .. }) => Err(unknown()),
            Err(e) => Err(Rejection::new(Reason::BadSignature, e.to_string())),
        }
    }
}

/// `unknown_sender`: a key no member owns.
fn unknown_key(key_id: &str) -> Rejection {
    Rejection::new(
        Reason::UnknownSender,
        format!("key {key_id:.80} is not in the directory"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_crypto::{AgencyKey, sign_envelope};

    const T: &str = "application/vnd.waymark.test";

    fn key(k: &AgencyKey, from: i64, until: Option<i64>) -> TrustedKey {
        TrustedKey {
            key: k.public_key(),
            valid_from: Timestamp(from),
            valid_until: until.map(Timestamp),
        }
    }

    #[test]
    fn batch_verification_agrees_with_one_by_one() {
        let (a, b, stranger, retired) = (
            AgencyKey::generate(),
            AgencyKey::generate(),
            AgencyKey::generate(),
            AgencyKey::generate(),
        );
        let mut dir = Directory::new();
        let (ida, idb) = (
            AgencyId::new("police-a").unwrap(),
            AgencyId::new("shelter-b").unwrap(),
        );
        dir.insert(
            ida.clone(),
            AgencyKind::Police,
            [key(&a, 0, None), key(&retired, 0, Some(10))],
        );
        dir.insert(idb.clone(), AgencyKind::Shelter, [key(&b, 0, None)]);
        let at = Timestamp(100);
        let good_a = |n: u8| sign_envelope(&a, T, vec![n; 8]);
        let mut forged = good_a(9);
        forged.signatures[0].sig[0] ^= 1;
        let envs = [
            good_a(1),
            sign_envelope(&b, T, vec![2; 8]),
            good_a(3),
            sign_envelope(&stranger, T, vec![4; 8]),
            sign_envelope(&retired, T, vec![5; 8]),
        ];
        // A's and B's good: each group verifies in one equation; the
        // stranger's is not vouched for.
        let items: Vec<_> = envs[..4].iter().map(|e| (e, at)).collect();
        assert_eq!(dir.verify_batch(&items, T), vec![true, true, true, false]);
        // A's retired key used after its validity: A's whole group is not
        // vouched for (each is then checked alone, which names it).
        let items: Vec<_> = envs.iter().map(|e| (e, at)).collect();
        let vouched = dir.verify_batch(&items, T);
        assert_eq!(vouched, vec![false, true, false, false, false]);
        for (e, ok) in envs.iter().zip(vouched) {
            if ok {
                assert_eq!(
                    dir.owner_of_verified(e).unwrap(),
                    dir.verify(e, T, at).unwrap()
                );
            }
        }
        assert!(dir.verify(&envs[0], T, at).is_ok());
        assert_eq!(
            dir.verify(&envs[3], T, at).unwrap_err().reason,
            Reason::UnknownSender
        );
        assert_eq!(
            dir.verify(&envs[4], T, at).unwrap_err().reason,
            Reason::RevokedKey
        );
        // One forged signature in A's group: none of A's is vouched for (the
        // caller checks them one by one), B's still is.
        let with_forged = [good_a(1), forged.clone(), sign_envelope(&b, T, vec![2; 8])];
        let items: Vec<_> = with_forged.iter().map(|e| (e, at)).collect();
        assert_eq!(dir.verify_batch(&items, T), vec![false, false, true]);
        assert_eq!(
            dir.verify(&forged, T, at).unwrap_err().reason,
            Reason::BadSignature
        );
        // A wrong payload type is never vouched for.
        let items = [(&envs[0], at)];
        assert_eq!(dir.verify_batch(&items, "other/type"), vec![false]);
        // Two signatures: vouched by the batch, refused by the count.
        let mut two = good_a(7);
        two.signatures.push(two.signatures[0].clone());
        assert_eq!(
            dir.owner_of_verified(&two).unwrap_err().reason,
            Reason::BadSignature
        );
    }
}
