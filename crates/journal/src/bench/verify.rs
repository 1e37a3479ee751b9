//! Whole-journal verification against raw Ed25519, interleaved in rounds.

use super::*;

/// The verification rows: ours against raw batch and raw one-by-one Ed25519.
pub(super) fn rows(opts: &BenchOptions, key: &AgencyKey) -> Result<Vec<BenchRow>, BenchError> {
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let j = open_journal(dir.path(), key)?;
    let n = usize::try_from(opts.verify_entries)
        .unwrap_or(20_000)
        .max(1);
    let envs: Vec<Vec<u8>> = envelope_pools(key, 16, n.div_ceil(16))
        .into_iter()
        .flatten()
        .take(n)
        .collect();
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for chunk in envs.chunks(envs.len().div_ceil(16).max(1)) {
            let (j, failed) = (&j, &failed);
            s.spawn(move || {
                for env in chunk {
                    if j.append_originated(env, Timestamp::from_millis(1)).is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if failed.load(Ordering::Relaxed) {
        return Err(BenchError::Baseline("an append failed".into()));
    }
    j.checkpoint_now(Timestamp::from_millis(2))?;
    let meta = ExportMeta {
        agency_kind: AgencyKind::Police,
        keys: vec![PublicKey {
            key_id: key.key_id().to_string(),
            ed25519: key.public_key().to_bytes().to_vec(),
            valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
            valid_until: None,
        }],
        exported_at: Timestamp::from_millis(3),
    };
    let msgs: Vec<(Vec<u8>, Signature)> = envs
        .iter()
        .filter_map(|b| waymark_proto::v1::Envelope::decode(b.as_slice()).ok())
        .filter_map(|e| {
            let sig = Signature::from_slice(&e.signatures.first()?.sig).ok()?;
            Some((pae(&e.payload_type, &e.payload), sig))
        })
        .collect();
    let pk = key.public_key();
    let keys: Vec<VerifyingKey> = vec![pk; VERIFY_BATCH];

    let mut entries = 0;
    let mut run_ours = || -> Result<f64, BenchError> {
        let start = Instant::now();
        let summary = verify_journal(&j, &meta, &KeyRing::new())?;
        entries = summary.entries;
        Ok(summary.entries as f64 / start.elapsed().as_secs_f64())
    };
    let run_batch = || -> Result<f64, BenchError> {
        let start = Instant::now();
        let mut ok = 0usize;
        for chunk in msgs.chunks(VERIFY_BATCH) {
            let m: Vec<&[u8]> = chunk.iter().map(|(m, _)| m.as_slice()).collect();
            let s: Vec<Signature> = chunk.iter().map(|(_, s)| *s).collect();
            if ed25519_dalek::verify_batch(&m, &s, &keys[..chunk.len()]).is_ok() {
                ok += chunk.len();
            }
        }
        Ok(ok as f64 / start.elapsed().as_secs_f64())
    };
    let run_single = || -> Result<f64, BenchError> {
        let start = Instant::now();
        let ok = msgs
            .iter()
            .filter(|(m, s)| pk.verify_strict(m, s).is_ok())
            .count();
        Ok(ok as f64 / start.elapsed().as_secs_f64())
    };

    let rounds = opts.verify_rounds.max(1);
    let (mut ours, mut batch, mut single) = (vec![], vec![], vec![]);
    // Warm-up, discarded.
    run_ours()?;
    run_batch()?;
    for round in 0..rounds {
        if round % 2 == 0 {
            ours.push(run_ours()?);
            batch.push(run_batch()?);
            single.push(run_single()?);
        } else {
            single.push(run_single()?);
            batch.push(run_batch()?);
            ours.push(run_ours()?);
        }
    }
    let name = format!("verification entries/s ({entries})");
    let row = |base: &[f64], baseline_name: &str| BenchRow {
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
        rounds,
        batch: None,
        target: None,
        baseline_name: baseline_name.into(),
    };
    Ok(vec![
        row(&batch, "ed25519 verify_batch x64 (our batching)"),
        row(&single, "ed25519 verify_strict, one by one"),
    ])
}
