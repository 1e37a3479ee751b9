//! `waymark.v1.JournalService`: read access for auditors and witnesses.
//!
//! Streams (entries, export) are produced by a task into a bounded channel,
//! so a slow reader slows the producer and memory stays bounded. The export
//! is the journal crate's writer, run on a blocking thread, cut into chunks.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use waymark_crypto::proto_from_timestamp;
use waymark_journal::{ExportMeta, JournalStore};
use waymark_proto::v1 as pb;
use waymark_proto::v1::journal_service_server::JournalService;
use waymark_types::Timestamp;

use crate::agency::Core;
use crate::common::case_id;
use crate::error::ApiError;
use crate::write::blocking;

/// The JournalService of one agency.
pub(crate) struct JournalSvc(pub(crate) Arc<Core>);

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Export chunk size.
const CHUNK: usize = 64 * 1024;

fn witnessed(c: &Core, env: pb::Envelope) -> Result<pb::WitnessedCheckpoint, ApiError> {
    let size = pb::Checkpoint::decode(env.payload.as_slice())
        .map_err(|_| ApiError::Internal("a stored checkpoint does not decode".into()))?
        .size;
    Ok(pb::WitnessedCheckpoint {
        cosignatures: c.journal.cosignatures(size)?,
        checkpoint: Some(env),
    })
}

/// Writes export bytes into the response channel in chunks.
struct Chunks {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<pb::ExportJournalResponse, Status>>,
}

impl Chunks {
    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(pb::ExportJournalResponse { chunk }))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.ship()
    }
}

fn export_meta(c: &Core) -> ExportMeta {
    let key = c
        .directory
        .member(&c.me)
        .and_then(|m| m.keys.get(c.key.key_id()).cloned());
    let (from, until) = key.map_or((Timestamp::from_millis(0), None), |k| {
        (k.valid_from, k.valid_until)
    });
    ExportMeta {
        agency_kind: c.kind,
        keys: vec![pb::PublicKey {
            key_id: c.key.key_id().to_string(),
            ed25519: c.key.public_key().as_bytes().to_vec(),
            valid_from: Some(proto_from_timestamp(from)),
            valid_until: until.map(proto_from_timestamp),
        }],
        exported_at: Timestamp::now(),
    }
}

#[tonic::async_trait]
impl JournalService for JournalSvc {
    type GetEntriesStream = Out<pb::GetEntriesResponse>;
    type ExportJournalStream = Out<pb::ExportJournalResponse>;

    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let r = req.into_inner();
        let case = if r.case_id.is_empty() {
            None
        } else {
            Some(case_id("case_id", &r.case_id)?)
        };
        let size = self.0.journal.size().map_err(ApiError::from)?;
        let from = r.from_seq.max(1);
        let to = if r.to_seq == 0 {
            size
        } else {
            r.to_seq.min(size)
        };
        let (tx, rx) = mpsc::channel(self.0.settings.stream_buffer.max(1));
        let core = self.0.clone();
        tokio::spawn(async move {
            let mut after = from - 1;
            while after < to {
                let page = blocking(&core, move |c| {
                    let page = match case {
                        Some(k) => c.journal.case_entries(&k, after, 256)?,
                        None => (after + 1..=(after + 256).min(to))
                            .filter_map(|s| {
                                c.journal.entry(s).transpose().map(|e| e.map(|b| (s, b)))
                            })
                            .collect::<Result<_, _>>()?,
                    };
                    Ok(page)
                })
                .await;
                let page = match page {
                    Ok(p) if p.is_empty() => return,
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                for (seq, entry) in page {
                    if seq > to {
                        return;
                    }
                    let item = pb::GetEntriesResponse {
                        seq,
                        entry_hash: waymark_journal::merkle::leaf_hash(&entry).to_vec(),
                        entry,
                    };
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                    after = seq;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_latest_checkpoint(
        &self,
        _req: Request<pb::GetLatestCheckpointRequest>,
    ) -> Result<Response<pb::GetLatestCheckpointResponse>, Status> {
        let checkpoint = blocking(&self.0, |c| {
            c.journal
                .latest_checkpoint()?
                .map(|env| witnessed(c, env))
                .transpose()
        })
        .await?;
        Ok(Response::new(pb::GetLatestCheckpointResponse {
            checkpoint,
        }))
    }

    async fn list_checkpoints(
        &self,
        req: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let checkpoints = blocking(&self.0, move |c| {
            let stored = c
                .journal
                .store()
                .checkpoints(r.from_size, limit)
                .map_err(|e| ApiError::Unavailable(format!("reading checkpoints: {e}")))?;
            stored
                .into_iter()
                .map(|s| {
                    let env = pb::Envelope::decode(s.envelope.as_slice()).map_err(|_| {
                        ApiError::Internal("a stored checkpoint does not decode".into())
                    })?;
                    witnessed(c, env)
                })
                .collect()
        })
        .await?;
        Ok(Response::new(pb::ListCheckpointsResponse { checkpoints }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let r = req.into_inner();
        if r.seq == 0 {
            return Err(ApiError::invalid("seq", "entries are numbered from 1").into());
        }
        let resp = blocking(&self.0, move |c| {
            let tree = if r.tree_size == 0 {
                c.journal.size()?
            } else {
                r.tree_size
            };
            let proof = c.journal.inclusion_proof(r.seq, tree)?;
            let entry = c.journal.entry(r.seq)?.ok_or(ApiError::OutOfRange {
                field: "seq",
                message: format!("no entry {}", r.seq),
            })?;
            Ok(pb::GetInclusionProofResponse {
                proof: Some(proof),
                entry_hash: waymark_journal::merkle::leaf_hash(&entry).to_vec(),
            })
        })
        .await?;
        Ok(Response::new(resp))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let r = req.into_inner();
        let proof = blocking(&self.0, move |c| {
            c.journal
                .consistency_proof(r.old_size, r.new_size)
                .map_err(|e| match ApiError::from(e) {
                    ApiError::OutOfRange { message, .. } => ApiError::OutOfRange {
                        field: "new_size",
                        message,
                    },
                    other => other,
                })
        })
        .await?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            proof: Some(proof),
        }))
    }

    async fn export_journal(
        &self,
        req: Request<pb::ExportJournalRequest>,
    ) -> Result<Response<Self::ExportJournalStream>, Status> {
        if req.get_ref().from_seq > 1 {
            return Err(ApiError::Unimplemented(
                "partial exports (from_seq > 1) are not available yet; export the whole journal"
                    .into(),
            )
            .into());
        }
        let (tx, rx) = mpsc::channel(self.0.settings.stream_buffer.clamp(1, 16));
        let core = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let meta = export_meta(&core);
            let mut w = Chunks {
                buf: Vec::with_capacity(CHUNK),
                tx: tx.clone(),
            };
            if let Err(e) = waymark_journal::export(&core.journal, &mut w, &meta) {
                let _ = tx.blocking_send(Err(ApiError::from(e).into()));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
