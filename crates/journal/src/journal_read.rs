//! Reads, checkpoints, cosignatures and proofs of the live journal.

use super::*;

impl<S: JournalStore> Journal<S> {
    /// Number of durable entries.
    ///
    /// # Errors
    /// A store read failure.
    pub fn size(&self) -> Result<u64, JournalError> {
        self.store.size().map_err(store("reading the journal size"))
    }

    /// The entry bytes of entry `seq`, if durable.
    ///
    /// # Errors
    /// A store read failure.
    pub fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .store
            .entry(seq)
            .map_err(store("reading an entry"))?
            .map(|e| e.bytes))
    }

    /// The entries of a case after seq `after`, in order, at most `limit`:
    /// `(seq, entry bytes)`. Uses the per-case index, never a scan.
    ///
    /// # Errors
    /// A store read failure.
    pub fn case_entries(
        &self,
        case: &CaseId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let seqs = self
            .store
            .case_seqs(case, after, limit)
            .map_err(store("reading the case index"))?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let e = self
                .store
                .entry(seq)
                .map_err(store("reading a case entry"))?
                .ok_or_else(|| JournalError::Store {
                    step: "reading a case entry",
                    source: StoreError::Corrupt(format!("case index names missing entry {seq}")),
                })?;
            out.push((seq, e.bytes));
        }
        Ok(out)
    }

    /// The entries about no case (witnessed checkpoints, capacity updates,
    /// quarantined input) after seq `after`, in order, at most `limit`:
    /// `(seq, entry bytes)`. Uses the store's index, never a scan of the
    /// journal.
    ///
    /// # Errors
    /// A store read failure.
    pub fn uncased_entries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let seqs = self
            .store
            .uncased_seqs(after, limit)
            .map_err(store("reading the index of entries without a case"))?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let e = self
                .store
                .entry(seq)
                .map_err(store("reading an entry"))?
                .ok_or_else(|| JournalError::Store {
                    step: "reading an entry",
                    source: StoreError::Corrupt(format!("index names missing entry {seq}")),
                })?;
            out.push((seq, e.bytes));
        }
        Ok(out)
    }

    /// The seq of the durable entry carrying `event`, if any.
    ///
    /// # Errors
    /// A store read failure.
    pub fn event_seq(&self, event: &EventId) -> Result<Option<u64>, JournalError> {
        self.store
            .event_seq(event)
            .map_err(store("reading the event index"))
    }

    /// Undelivered events after outbox position `after`, in seq order. The
    /// bus keeps its own retry timing; an item leaves the outbox when the
    /// receipt completing it is journaled ([`Journal::append_received`]), or
    /// when a delivery that is not receipted is marked complete
    /// ([`Journal::complete_outbox`]).
    ///
    /// # Errors
    /// A store read failure.
    pub fn outbox(&self, after: u64, limit: usize) -> Result<Vec<OutboxItem>, JournalError> {
        self.store
            .outbox(after, limit)
            .map_err(store("reading the outbox"))
    }

    /// The Merkle root over entries `1..=size` (`size` ≤ the journal size).
    ///
    /// # Errors
    /// [`JournalError::OutOfRange`] or a store read failure.
    pub fn root(&self, size: u64) -> Result<Hash, JournalError> {
        let have = self.size()?;
        if size > have {
            return Err(JournalError::OutOfRange(format!(
                "size {size} > journal size {have}"
            )));
        }
        merkle::root(&StoreNodes(&self.store), size).map_err(store("reading Merkle nodes"))
    }

    /// Inclusion proof of entry `seq` in the tree of `tree_size` entries.
    ///
    /// # Errors
    /// [`JournalError::OutOfRange`] unless `1 <= seq <= tree_size <= size`.
    pub fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, JournalError> {
        let have = self.size()?;
        if seq == 0 || seq > tree_size || tree_size > have {
            return Err(JournalError::OutOfRange(format!(
                "entry {seq} in tree {tree_size} (journal size {have})"
            )));
        }
        let hashes = merkle::inclusion_proof(&StoreNodes(&self.store), seq - 1, tree_size)
            .map_err(store("reading Merkle nodes"))?;
        Ok(InclusionProof {
            leaf_index: seq - 1,
            tree_size,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// Consistency proof from the tree of `old` entries to the tree of `new`.
    ///
    /// # Errors
    /// [`JournalError::OutOfRange`] unless `old <= new <= size`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, JournalError> {
        let have = self.size()?;
        if old > new || new > have {
            return Err(JournalError::OutOfRange(format!(
                "sizes {old} -> {new} (journal size {have})"
            )));
        }
        let hashes = merkle::consistency_proof(&StoreNodes(&self.store), old, new)
            .map_err(store("reading Merkle nodes"))?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// Signs a checkpoint if `checkpoint_every_entries` entries are not yet
    /// covered by one, or the oldest uncovered entry was recorded
    /// `checkpoint_every_ms` or more before `now`. The checkpoint is durable when returned; publish it then.
    ///
    /// # Errors
    /// [`JournalError::NoSigningKey`], store or commit failures.
    pub fn maybe_checkpoint(&self, now: Timestamp) -> Result<Option<Envelope>, JournalError> {
        self.checkpoint(now, false)
    }

    /// Signs a checkpoint over all durable entries now, unless the latest
    /// checkpoint already covers them.
    ///
    /// # Errors
    /// As [`Journal::maybe_checkpoint`].
    pub fn checkpoint_now(&self, now: Timestamp) -> Result<Option<Envelope>, JournalError> {
        self.checkpoint(now, true)
    }

    fn checkpoint(&self, now: Timestamp, force: bool) -> Result<Option<Envelope>, JournalError> {
        let _one_at_a_time = self
            .checkpoint_lock
            .lock()
            .map_err(|_| JournalError::Failed("a checkpoint panicked".into()))?;
        let size = self.size()?;
        let last_size = self.lock()?.last_checkpoint;
        if size <= last_size {
            return Ok(None);
        }
        // Due by time when the oldest entry not yet covered is older than
        // `checkpoint_every_ms`: no entry stays uncovered for longer.
        let oldest_uncovered = self
            .store
            .entry(last_size + 1)
            .map_err(store("reading the oldest uncovered entry"))?
            .and_then(|e| JournalEntry::decode(e.bytes.as_slice()).ok())
            .and_then(|e| e.recorded_at)
            .map_or(now, |t| timestamp_from_proto(&t));
        let due = size - last_size >= self.config.checkpoint_every_entries
            || now.millis().saturating_sub(oldest_uncovered.millis())
                >= self.config.checkpoint_every_ms;
        if !force && !due {
            return Ok(None);
        }
        let key = self.signer.as_ref().ok_or(JournalError::NoSigningKey)?;
        let root =
            merkle::root(&StoreNodes(&self.store), size).map_err(store("reading Merkle nodes"))?;
        let payload = Checkpoint {
            agency_id: self.config.agency.to_string(),
            size,
            root_hash: root.to_vec(),
            time: Some(proto_from_timestamp(now)),
        }
        .encode_to_vec();
        let env = sign_envelope(key, PAYLOAD_TYPE_CHECKPOINT, payload);
        let stored = StoredCheckpoint {
            size,
            envelope: env.encode_to_vec(),
        };
        self.enqueue_and_wait(|b| b.checkpoints.push(stored))?;
        self.lock()?.last_checkpoint = size;
        Ok(Some(env))
    }

    /// The checkpoint signed at `size`, if any.
    ///
    /// # Errors
    /// A store read failure or an undecodable stored envelope.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<Envelope>, JournalError> {
        let c = self
            .store
            .checkpoints(size, 1)
            .map_err(store("reading checkpoints"))?;
        c.into_iter()
            .find(|c| c.size == size)
            .map(|c| decode_stored(&c.envelope))
            .transpose()
    }

    /// The most recent checkpoint.
    ///
    /// # Errors
    /// A store read failure or an undecodable stored envelope.
    pub fn latest_checkpoint(&self) -> Result<Option<Envelope>, JournalError> {
        let c = self
            .store
            .latest_checkpoint()
            .map_err(store("reading checkpoints"))?;
        c.map(|c| decode_stored(&c.envelope)).transpose()
    }

    /// Stores a witness's cosignature of one of this journal's checkpoints
    /// after checking that it names a stored checkpoint exactly (hash, size,
    /// root, agency) and that its signature verifies with `witnesses` at its
    /// `witnessed_at` time. One cosignature per witness and checkpoint; a
    /// second one replaces the first.
    ///
    /// # Errors
    /// [`JournalError::BadCosignature`], store or commit failures.
    pub fn add_cosignature(
        &self,
        envelope: &Envelope,
        witnesses: &KeyRing,
    ) -> Result<(), JournalError> {
        let bad = |s: &str| JournalError::BadCosignature(s.to_owned());
        let cosig = Cosignature::decode(envelope.payload.as_slice())
            .map_err(|_| bad("payload is not a Cosignature"))?;
        let at = cosig
            .witnessed_at
            .as_ref()
            .map(timestamp_from_proto)
            .ok_or_else(|| bad("witnessed_at is missing"))?;
        witnesses
            .verify(envelope, PAYLOAD_TYPE_COSIGNATURE, at)
            .map_err(|e| JournalError::BadCosignature(e.to_string()))?;
        let witness =
            AgencyId::new(&cosig.witness_agency_id).map_err(|_| bad("bad witness_agency_id"))?;
        let ckpt = self
            .checkpoint_at(cosig.size)?
            .ok_or_else(|| bad("no checkpoint of that size"))?;
        let body = Checkpoint::decode(ckpt.payload.as_slice())
            .map_err(|_| bad("stored checkpoint undecodable"))?;
        let hash: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            &ckpt.payload,
        ))
        .into();
        if cosig.checkpoint_hash != hash
            || cosig.root_hash != body.root_hash
            || cosig.agency_id != self.config.agency.as_str()
        {
            return Err(bad("does not match the stored checkpoint"));
        }
        let stored = StoredCosignature {
            size: cosig.size,
            witness,
            envelope: envelope.encode_to_vec(),
        };
        self.enqueue_and_wait(|b| b.cosignatures.push(stored))
    }

    /// The cosignature envelopes stored for the checkpoint of `size`.
    ///
    /// # Errors
    /// A store read failure or an undecodable stored envelope.
    pub fn cosignatures(&self, size: u64) -> Result<Vec<Envelope>, JournalError> {
        let c = self
            .store
            .cosignatures(size)
            .map_err(store("reading cosignatures"))?;
        c.iter().map(|c| decode_stored(&c.envelope)).collect()
    }
}

fn decode_stored(bytes: &[u8]) -> Result<Envelope, JournalError> {
    Envelope::decode(bytes).map_err(|_| JournalError::Store {
        step: "decoding a stored envelope",
        source: StoreError::Corrupt("stored envelope does not decode".into()),
    })
}
