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
//! # Waiting without a thread
//! An async caller stages its append ([`Journal::stage_originated`] and
//! the like) and asks [`Journal::progress`] instead of sleeping in
//! [`Journal::wait_staged`]. While a commit runs it is told to wait for the
//! next [`Journal::on_progress`] call (every commit step makes one: the
//! writer's slot freed, a batch durable, a failure). When its batch needs a
//! leader and none is committing, one caller at a time is told to lead: it
//! calls [`Journal::lead`] on a thread that may block, which commits like a
//! sync appender. So a batch of async appends costs one blocking thread,
//! not one each. The claim to lead is dropped when the claimant calls
//! `lead` or when any leader takes a batch; if the claimant finds its append
//! already durable, it makes an `on_progress` call itself, so that callers
//! told to wait behind its claim ask again.
//!
//! Outbox removals without an entry ([`Journal::complete_outbox`]) take the
//! same path: decided under the state lock, committed in the next batch.

use super::*;

/// The wake-up slot of a batch generation.
fn slot(generation: u64) -> usize {
    (generation % WAKE_SLOTS as u64) as usize
}

impl<S: JournalStore> Journal<S> {
    pub(super) fn append(&self, d: Draft) -> Result<Appended, JournalError> {
        let staged = self.stage(d)?;
        self.wait_durable(staged.ticket)?;
        Ok(staged.appended)
    }

    /// Orders `d` (assigns its seq and queues it for the next commit)
    /// without waiting for the commit.
    pub(super) fn stage(&self, d: Draft) -> Result<Staged, JournalError> {
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
                    // Possibly still pending: durable with what is pending now.
                    return Ok(Staged {
                        appended: Appended::Existing { seq },
                        ticket: st.next_ticket,
                    });
                }
            }
            // A request already answered (or being answered) appends nothing.
            if let Some((key, _)) = &d.request {
                let existing = match st.pending_requests.get(key) {
                    Some(r) => Some(r.seq),
                    None => self
                        .store
                        .request_record(key)
                        .map_err(store("reading a request record"))?
                        .map(|r| r.seq),
                };
                if let Some(seq) = existing {
                    return Ok(Staged {
                        appended: Appended::Existing { seq },
                        ticket: st.next_ticket,
                    });
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
            if let Some((key, value)) = d.request {
                let r = RequestRecord { key, seq, value };
                st.pending_requests.insert(r.key.clone(), r.clone());
                st.pending.requests.push(r);
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
        Ok(Staged {
            appended: result,
            ticket,
        })
    }

    /// Waits until a [`Journal::stage_received`] append is durable and
    /// visible, and returns it. Returns at once if a later append of the
    /// caller's already returned (batches are durable in order).
    ///
    /// # Errors
    /// A commit failure, or [`JournalError::Failed`] after an earlier one.
    pub fn wait_staged(&self, staged: Staged) -> Result<Appended, JournalError> {
        self.wait_durable(staged.ticket)?;
        Ok(staged.appended)
    }

    /// Where `staged` stands, without blocking on a commit (a short lock
    /// only): durable, or whether the caller must lead its batch's commit
    /// ([`Journal::lead`]) or wait for the next [`Journal::on_progress`]
    /// call. `Lead` is told to one caller at a time; a caller told to lead
    /// must call [`Journal::lead`], or the async waiters of its batch wait
    /// until some other append commits.
    ///
    /// # Errors
    /// [`JournalError::Failed`] after a failed commit.
    pub fn progress(&self, staged: &Staged) -> Result<Progress, JournalError> {
        let mut st = self.lock()?;
        if st.durable_ticket >= staged.ticket {
            return Ok(Progress::Durable(staged.appended));
        }
        if let Some(f) = &st.failed {
            return Err(JournalError::Failed(f.clone()));
        }
        if st.committing || st.taken_ticket >= staged.ticket || st.lead_claimed {
            return Ok(Progress::Wait);
        }
        st.lead_claimed = true;
        Ok(Progress::Lead)
    }

    /// Commits (or waits for) `staged`'s batch, for a caller that
    /// [`Journal::progress`] told to lead; [`Journal::wait_staged`]
    /// otherwise. Blocks.
    ///
    /// # Errors
    /// As [`Journal::wait_staged`].
    pub fn lead(&self, staged: Staged) -> Result<Appended, JournalError> {
        let durable = {
            let mut st = self.lock()?;
            st.lead_claimed = false;
            st.durable_ticket >= staged.ticket
        };
        if durable {
            // Callers told to wait behind this claim may have no commit
            // left to tell them otherwise.
            self.progress.notify(0);
            return Ok(staged.appended);
        }
        self.wait_durable(staged.ticket)?;
        Ok(staged.appended)
    }

    /// Registers `f` to be called whenever a [`Journal::progress`] answer
    /// may have changed: a leader's write finished (the next batch may
    /// lead), a batch became durable and visible, a commit failed. It runs
    /// on the committing thread, possibly under the journal's state lock:
    /// it must be quick, must not block and must not call the journal
    /// (wake waiters, e.g. `tokio::sync::Notify::notify_waiters`).
    pub fn on_progress(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut v) = self.progress.0.lock() {
            v.push(Box::new(move |_| f()));
        }
    }

    /// Returns once everything up to `ticket` is durable and visible. If no
    /// commit is writing and this ticket is not in flight yet, this thread
    /// becomes the leader and commits everything pending; otherwise it sleeps
    /// until its batch's generation is signalled, then checks again.
    ///
    /// # Wake-ups
    /// Every batch has a generation; its appenders sleep on
    /// `wake[generation % WAKE_SLOTS]`. A finished batch wakes only its own
    /// appenders (`notify_all` on its slot), and when the writer's slot frees
    /// up (the batch is durable, its index update still running) exactly one
    /// appender of the gathering batch is woken to lead it (`notify_one`).
    /// With one condition variable for all, every commit step woke every
    /// waiting appender: with 16 appenders on two cores that thundering herd
    /// cost more CPU than the commit itself. Every waiter re-checks its
    /// condition under the lock, so a wake-up that is not for it is harmless,
    /// and the state changes before the signal under the same lock, so none
    /// is lost.
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
                let generation = st
                    .in_flight
                    .iter()
                    .find(|(_, upto)| *upto >= ticket)
                    .map_or(st.pending_gen, |(g, _)| *g);
                st = self.wake[slot(generation)]
                    .wait(st)
                    .map_err(|_| JournalError::Failed("a journal thread panicked".into()))?;
                continue;
            }
            st.committing = true;
            st.lead_claimed = false;
            let batch = std::mem::take(&mut st.pending);
            let upto = st.next_ticket;
            st.taken_ticket = upto;
            let generation = st.pending_gen;
            st.pending_gen += 1;
            st.in_flight.push_back((generation, upto));
            drop(st);
            // Once the batch is durable, let the next leader start its write
            // and sync while this batch's index update runs.
            let mut released = false;
            let outcome = self.store.commit_pipelined(&batch, &mut || {
                if let Ok(mut st) = self.state.lock() {
                    st.committing = false;
                    released = true;
                    self.wake[slot(st.pending_gen)].notify_one();
                }
                self.progress.notify(0);
            });
            st = self.lock()?;
            if !released {
                st.committing = false;
                self.wake[slot(st.pending_gen)].notify_one();
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
                    for r in &batch.requests {
                        st.pending_requests.remove(&r.key);
                    }
                    // Wake this batch's appenders, and those of any earlier
                    // batch this one overtook (they are durable too).
                    let durable = st.durable_ticket;
                    st.in_flight.retain(|&(g, u)| {
                        let done = g == generation || u <= durable;
                        if done {
                            self.wake[slot(g)].notify_all();
                        }
                        !done
                    });
                    // This batch holds `ticket`: done. Tell the progress and
                    // grow listeners outside the lock; the size read is the
                    // store's, so none hears of an entry it cannot read.
                    drop(st);
                    self.progress.notify(0);
                    if !batch.entries.is_empty()
                        && let Ok(size) = self.store.size()
                    {
                        self.grow.notify(size);
                    }
                    return Ok(());
                }
                Err(e) => {
                    st.failed = Some(e.to_string());
                    for w in &self.wake {
                        w.notify_all();
                    }
                    drop(st);
                    self.progress.notify(0);
                    return Err(JournalError::Store {
                        step: "committing a batch",
                        source: e,
                    });
                }
            }
        }
    }

    /// Registers `f` to be told the journal's size after every commit that
    /// made new entries visible, whoever appended them (this process's
    /// writes, received events, receipts, quarantine, checkpoints). It runs
    /// on the committing thread, outside the journal's locks, so it must be
    /// quick and must not block: wake something up (a
    /// `tokio::sync::watch::Sender::send_if_modified`, a condition variable)
    /// and return. Sizes only grow, but two commits finishing together may
    /// report them out of order: keep the maximum.
    pub fn on_grow(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        if let Ok(mut v) = self.grow.0.lock() {
            v.push(Box::new(f));
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
