//! Durable appends: our journal against the raw sled loop and the bare log
//! loop, interleaved in rounds (method in the parent module's docs).

use super::*;

/// Our journal and the raw sled database of one append row, both living
/// across the row's rounds.
struct AppendRig<'k> {
    key: &'k AgencyKey,
    threads: usize,
    journal: Journal<Counting<SledStore>>,
    raw: sled::Db,
    raw_file: File,
    raw_next: u64,
    /// Length of our entry bytes, the raw loop's value length.
    value_len: usize,
    /// The bare loop's file (zero-filled, written round-robin) and position.
    bare_file: File,
    bare_pos: u64,
    /// Log bytes our last round wrote per entry.
    log_per_entry: f64,
    /// Envelopes to sign per thread for the next round of ours.
    per_thread: usize,
    _dirs: (TempDir, TempDir),
}

impl<'k> AppendRig<'k> {
    fn new(key: &'k AgencyKey, threads: usize) -> Result<Self, BenchError> {
        let ours = tempfile::tempdir().map_err(BenchError::TempDir)?;
        let raw_dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
        let journal = open_journal(ours.path(), key)?;
        let cfg = SledConfig::default();
        let raw = sled::Config::new()
            .path(raw_dir.path())
            .cache_capacity(cfg.cache_capacity)
            .flush_every_ms(Some(cfg.index_flush_every_ms))
            .open()
            .map_err(|x| baseline_err(&x))?;
        let raw_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(raw_dir.path().join("db"))
            .map_err(|x| baseline_err(&x))?;
        let bare_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(raw_dir.path().join("bare.log"))
            .map_err(|x| baseline_err(&x))?;
        bare_file
            .write_all_at(&vec![0u8; BARE_FILE as usize], 0)
            .and_then(|()| bare_file.sync_all())
            .map_err(|x| baseline_err(&x))?;
        Ok(Self {
            key,
            threads,
            journal,
            raw,
            raw_file,
            raw_next: 0,
            value_len: 0,
            bare_file,
            bare_pos: 0,
            log_per_entry: 0.0,
            per_thread: 1500,
            _dirs: (ours, raw_dir),
        })
    }

    /// One round of ours: durable appends/s and the average batch size.
    fn ours(&mut self, round: Duration) -> Result<(f64, f64), BenchError> {
        // Signed before the clock starts; enough for this round at the last
        // round's rate with a margin. Running out ends the round early,
        // which keeps the rate right.
        let pools = envelope_pools(self.key, self.threads, self.per_thread);
        let j = &self.journal;
        let commits_before = j.store().commits.load(Ordering::Relaxed);
        let log_before = j.store().inner.log_len();
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let failed = Mutex::new(None::<crate::JournalError>);
        let start_line = Barrier::new(self.threads + 1);
        let start = std::thread::scope(|s| {
            for pool in &pools {
                let (stop, done, failed, start_line) = (&stop, &done, &failed, &start_line);
                s.spawn(move || {
                    start_line.wait();
                    for env in pool {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Err(e) = j.append_originated(env, Timestamp::from_millis(1)) {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    stop.store(true, Ordering::Relaxed);
                });
            }
            start_line.wait();
            let start = Instant::now();
            while start.elapsed() < round && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, Ordering::Relaxed);
            start
        });
        // The scope joined every appender: in-flight appends are counted.
        let secs = start.elapsed().as_secs_f64();
        if let Some(e) = failed.into_inner().ok().flatten() {
            return Err(e.into());
        }
        let n = done.load(Ordering::Relaxed);
        let commits = (j.store().commits.load(Ordering::Relaxed) - commits_before).max(1);
        if self.value_len == 0 {
            self.value_len = j.entry(1)?.map_or(200, |e| e.len());
        }
        let rate = n as f64 / secs;
        let log = j.store().inner.log_len() - log_before;
        self.log_per_entry = log as f64 / n.max(1) as f64;
        self.per_thread = ((rate * round.as_secs_f64() * 1.5) as usize / self.threads).max(200);
        Ok((rate, n as f64 / commits as f64))
    }

    /// One round of the raw loop at average batch size `batch`: items/s.
    fn raw(&mut self, batch: f64, round: Duration) -> Result<f64, BenchError> {
        let value = vec![0x5a_u8; self.value_len.max(1)];
        let batch = batch.max(1.0);
        let mut owed = 0.0_f64;
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < round {
            // Batches of ⌊batch⌋ and ⌈batch⌉ averaging `batch`.
            owed += batch;
            let take = owed.floor();
            owed -= take;
            for _ in 0..take as u64 {
                self.raw
                    .insert(self.raw_next.to_be_bytes(), value.as_slice())
                    .map_err(|x| baseline_err(&x))?;
                self.raw_next += 1;
                n += 1;
            }
            self.raw.flush().map_err(|x| baseline_err(&x))?;
            self.raw_file.sync_data().map_err(|x| baseline_err(&x))?;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// One round of the bare log loop at average batch size `batch`:
    /// entries/s of one thread writing, per batch, as many log bytes as our
    /// last round wrote per entry times the batch, with one `pwrite` into
    /// zero-filled space (as our log), then `fdatasync`.
    fn bare(&mut self, batch: f64, round: Duration) -> Result<f64, BenchError> {
        let per_entry = self.log_per_entry.max(1.0);
        let batch = batch.max(1.0);
        let buf = vec![0x5a_u8; (per_entry * batch.ceil()) as usize + 1];
        let mut owed = 0.0_f64;
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < round {
            owed += batch;
            let take = owed.floor();
            owed -= take;
            let len = ((take * per_entry) as usize).clamp(1, buf.len());
            if self.bare_pos + len as u64 > BARE_FILE {
                self.bare_pos = 0;
            }
            self.bare_file
                .write_all_at(&buf[..len], self.bare_pos)
                .and_then(|()| self.bare_file.sync_data())
                .map_err(|x| baseline_err(&x))?;
            self.bare_pos += len as u64;
            n += take as u64;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }
}

/// The append rows for `threads` appenders: against the raw sled loop (the
/// target) and against the bare log loop.
pub(super) fn rows(
    threads: usize,
    opts: &BenchOptions,
    key: &AgencyKey,
) -> Result<[BenchRow; 2], BenchError> {
    let mut rig = AppendRig::new(key, threads)?;
    // Warm-up, discarded; it also gives the first batch size.
    let (_, mut batch) = rig.ours(opts.round)?;
    rig.raw(batch, opts.round)?;
    rig.bare(batch, opts.round)?;
    let (mut ours, mut base, mut bare, mut batches) = (vec![], vec![], vec![], vec![]);
    for round in 0..opts.rounds.max(1) {
        // ours, raw, bare; then bare, raw, ours; …
        let (o, b, f) = if round % 2 == 0 {
            let (o, bt) = rig.ours(opts.round)?;
            batch = bt;
            let b = rig.raw(batch, opts.round)?;
            (o, b, rig.bare(batch, opts.round)?)
        } else {
            let f = rig.bare(batch, opts.round)?;
            let b = rig.raw(batch, opts.round)?;
            let (o, bt) = rig.ours(opts.round)?;
            batch = bt;
            (o, b, f)
        };
        ours.push(o);
        base.push(b);
        bare.push(f);
        batches.push(batch);
    }
    let name = format!(
        "durable appends/s, {threads} appender{}",
        if threads == 1 { "" } else { "s" }
    );
    let row = |base: &[f64], target, baseline_name: &str| BenchRow {
        name: name.clone(),
        ours: Spread::of(&ours).median,
        baseline: Spread::of(base).median,
        ratio: Spread::of(
            &ours
                .iter()
                .zip(base)
                .map(|(o, b)| o / b)
                .collect::<Vec<_>>(),
        ),
        rounds: ours.len(),
        batch: Some(Spread::of(&batches).median),
        target,
        baseline_name: baseline_name.into(),
    };
    Ok([
        row(
            &base,
            Some(APPEND_TARGET),
            "raw sled: insert xB, flush, fdatasync",
        ),
        row(
            &bare,
            None,
            "bare log: pwrite B entries' log bytes, fdatasync",
        ),
    ])
}
