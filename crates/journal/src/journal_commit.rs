//! Group commit: ordering appends under the state lock, then sharing one
//! durable store commit among every appender waiting at the time.
//!
//! # Pipelining
//! A commit has two steps in the store: the durable write (log append and
//! fdatasync) and making the batch visible (the index update). The leader
//! releases the "commit running" flag as soon as its batch is durable
//! ([`JournalStore::commit_pipelined`]), so the next leader's write and sync
//! overlap this batch's index update. The store makes batches visible in
//! commit order, and an appender returns only once its batch is both durable
//! and visible: reads never see a batch that is not on stable storage, and a
//! caller can read back what it appended.
//!
//! Outbox removals without an entry ([`Journal::complete_outbox`]) take the
//! same path: decided under the state lock, committed in the next batch.

use super::*;

impl<S: JournalStore> Journal<S> {
    pub(super) fn append(&self, d: Draft) -> Result<Appended, JournalError> {
        let ticket;
        let result;
        {
            let mut st = self.lock()?;
            if let Some(f) = &st.failed {
                return Err(JournalError::Failed(f.clone()));
            }
            // Dedup by event id, against committed and pending entries.
            if let Some(ev) = &d.event_id {
                let existing = match st.pending_events.get(ev) {
                    Some(seq) => Some(*seq),
                    None => self
                        .store
                        .event_seq(ev)
                        .map_err(store("reading the event index"))?,
                };
                if let Some(seq) = existing {
                    let t = st.next_ticket;
                    drop(st);
                    self.wait_durable(t)?;
                    return Ok(Appended::Existing { seq });
                }
            }
            let remove = match &d.completes {
                None => None,
                Some((ev, from)) => {
                    let seq = match st.pending_events.get(ev) {
                        Some(s) => *s,
                        None => self
                            .store
                            .event_seq(ev)
                            .map_err(store("reading the event index"))?
                            .ok_or(JournalError::UnknownCompletedEvent(*ev))?,
                    };
                    let k = (seq, from.clone());
                    let present = !st.pending_removed.contains(&k)
                        && (st.pending_outbox.contains(&k)
                            || self
                                .store
                                .outbox_contains(seq, from)
                                .map_err(store("reading the outbox"))?);
                    present.then_some(k)
                }
            };
            let seq = st.next_seq;
            let mut e = d.entry;
            e.seq = seq;
            e.prev_hash = st.head.to_vec();
            let bytes = e.encode_to_vec();
            let hash = merkle::leaf_hash(&bytes);
            let nodes = st.frontier.push(hash);
            st.head = hash;
            st.next_seq += 1;
            if let Some(ev) = d.event_id {
                st.pending_events.insert(ev, seq);
                if let Some(r) = d.outbox_to {
                    st.pending_outbox.insert((seq, r.clone()));
                    st.pending.outbox_add.push(OutboxItem {
                        seq,
                        recipient: r,
                        event_id: ev,
                    });
                }
            }
            if let Some(k) = remove {
                st.pending_removed.insert(k.clone());
                st.pending.outbox_remove.push(k);
            }
            st.pending.entries.push(StoredEntry {
                seq,
                bytes,
                hash,
                nodes,
                case_id: d.case_id,
                event_id: d.event_id,
            });
            st.next_ticket += 1;
            ticket = st.next_ticket;
            result = Appended::New { seq, hash };
        }
        self.wait_durable(ticket)?;
        Ok(result)
    }

    /// Returns once everything up to `ticket` is durable and visible. If no
    /// commit is writing and this ticket is not in flight yet, this thread
    /// becomes the leader and commits everything pending; otherwise it sleeps
    /// on the condition variable until a commit step ends, then checks again.
    fn wait_durable(&self, ticket: u64) -> Result<(), JournalError> {
        let mut st = self.lock()?;
        loop {
            if st.durable_ticket >= ticket {
                return Ok(());
            }
            if let Some(f) = &st.failed {
                return Err(JournalError::Failed(f.clone()));
            }
            // Wait while a leader writes, or while the batch holding this
            // ticket is already in flight (durable, its index update running).
            if st.committing || st.taken_ticket >= ticket {
                st = self
                    .committed
                    .wait(st)
                    .map_err(|_| JournalError::Failed("a journal thread panicked".into()))?;
                continue;
            }
            st.committing = true;
            let batch = std::mem::take(&mut st.pending);
            let upto = st.next_ticket;
            st.taken_ticket = upto;
            drop(st);
            // Once the batch is durable, let the next leader start its write
            // and sync while this batch's index update runs.
            let mut released = false;
            let outcome = self.store.commit_pipelined(&batch, &mut || {
                if let Ok(mut st) = self.state.lock() {
                    st.committing = false;
                    released = true;
                }
                self.committed.notify_all();
            });
            st = self.lock()?;
            if !released {
                st.committing = false;
            }
            match outcome {
                Ok(()) => {
                    // Stores make batches visible in commit order, so a later
                    // batch may finish first only by a hair: keep the maximum.
                    st.durable_ticket = st.durable_ticket.max(upto);
                    for e in &batch.entries {
                        if let Some(ev) = &e.event_id {
                            st.pending_events.remove(ev);
                        }
                    }
                    for o in &batch.outbox_add {
                        st.pending_outbox.remove(&(o.seq, o.recipient.clone()));
                    }
                    // A removed item is gone for good (an outbox item is
                    // queued once), so also forget it as pending: batches
                    // overlap, and the batch that queued it may do its own
                    // clean-up after this one (its waiters already returned
                    // through `durable_ticket`). Left in `pending_outbox`, the
                    // stale entry would make the item look present again and
                    // let a second completion remove it twice.
                    for k in &batch.outbox_remove {
                        st.pending_removed.remove(k);
                        st.pending_outbox.remove(k);
                    }
                    self.committed.notify_all();
                }
                Err(e) => {
                    st.failed = Some(e.to_string());
                    self.committed.notify_all();
                    return Err(JournalError::Store {
                        step: "committing a batch",
                        source: e,
                    });
                }
            }
        }
    }

    /// Removes the outbox item `(seq, recipient)` without a receipt, for a
    /// delivery that is complete by other means (the bus's own receipts are
    /// not receipted: they leave the outbox once the broker acknowledged
    /// them). Nothing is journaled: the outbox is delivery bookkeeping, not
    /// evidence. The removal goes through the group commit like an append,
    /// and the call returns once it is durable and visible.
    ///
    /// Returns `true` if this call removed the item, `false` if it was not in
    /// the outbox (never queued, already removed, or removed by a receipt
    /// committed concurrently; the call then still returns only once that
    /// removal is durable). Idempotent.
    ///
    /// # Errors
    /// A store read or commit failure; [`JournalError::Failed`] after an
    /// earlier failed commit.
    pub fn complete_outbox(&self, seq: u64, recipient: &AgencyId) -> Result<bool, JournalError> {
        Ok(self.complete_outbox_items(&[(seq, recipient.clone())])? == 1)
    }

    /// [`Journal::complete_outbox`] for several items, in one group commit
    /// (one fsync); returns how many of them this call removed.
    ///
    /// # Errors
    /// As [`Journal::complete_outbox`]; on an error none of the removals is
    /// known to be durable.
    pub fn complete_outbox_items(&self, items: &[(u64, AgencyId)]) -> Result<usize, JournalError> {
        let ticket;
        let mut removed = 0;
        {
            let mut st = self.lock()?;
            if let Some(f) = &st.failed {
                return Err(JournalError::Failed(f.clone()));
            }
            for (seq, recipient) in items {
                let k = (*seq, recipient.clone());
                // Decided under the state lock, like a receipt's removal, so
                // a concurrent receipt and this call cannot both remove it.
                let present = !st.pending_removed.contains(&k)
                    && (st.pending_outbox.contains(&k)
                        || self
                            .store
                            .outbox_contains(*seq, recipient)
                            .map_err(store("reading the outbox"))?);
                if present {
                    st.pending_removed.insert(k.clone());
                    st.pending.outbox_remove.push(k);
                    removed += 1;
                }
            }
            if removed > 0 {
                st.next_ticket += 1;
            }
            // Our removals, or pending ones by concurrent receipts.
            ticket = st.next_ticket;
        }
        self.wait_durable(ticket)?;
        Ok(removed)
    }

    pub(super) fn enqueue_and_wait(&self, f: impl FnOnce(&mut Batch)) -> Result<(), JournalError> {
        let ticket = {
            let mut st = self.lock()?;
            if let Some(f) = &st.failed {
                return Err(JournalError::Failed(f.clone()));
            }
            f(&mut st.pending);
            st.next_ticket += 1;
            st.next_ticket
        };
        self.wait_durable(ticket)
    }
}
