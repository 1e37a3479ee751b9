//! `waymark.v1.InboxService`: a resumable stream of what other agencies sent.
//!
//! Items are the journal's RECEIVED entries (and QUARANTINED ones on
//! request) after `after_cursor`, in journal order; the cursor is the entry's
//! seq. After the backlog the stream waits on `Core::grown` (bumped after
//! every journal commit, `Journal::on_grow`) for new entries: no polling per
//! stream. Each stream has its own producer task feeding a bounded channel,
//! so a slow client makes its producer wait (backpressure) and nothing is
//! dropped or skipped. Streams end cleanly (status OK) when the agency shuts
//! down, and their producer stops when the client goes away.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use waymark_proto::v1 as pb;
use waymark_proto::v1::inbox_service_server::InboxService;

use crate::agency::Core;
use crate::error::ApiError;
use crate::state::decode_event;
use crate::write::read_entries;

/// The InboxService of one agency.
pub(crate) struct InboxSvc(pub(crate) Arc<Core>);

/// Entries read per blocking batch.
const BATCH: u64 = 64;

/// The items among entries `from+1..=to`: `(seq, item if it is one)`.
fn read(
    c: &Core,
    from: u64,
    to: u64,
    quarantined: bool,
) -> Result<Vec<(u64, Option<pb::SubscribeResponse>)>, ApiError> {
    let mut out = Vec::new();
    for seq in from + 1..=to {
        let item = c
            .journal
            .entry(seq)?
            .and_then(|b| pb::JournalEntry::decode(b.as_slice()).ok())
            .and_then(|e| {
                let received = e.kind == pb::EntryKind::Received as i32;
                let quarantine = e.kind == pb::EntryKind::Quarantined as i32;
                if !(received || quarantined && quarantine) {
                    return None;
                }
                Some(pb::SubscribeResponse {
                    cursor: seq,
                    recorded_at: e.recorded_at,
                    entry_kind: e.kind,
                    event: if received {
                        decode_event(&e.envelope)
                    } else {
                        None
                    },
                    envelope: e.envelope,
                    quarantine: e.quarantine,
                })
            });
        out.push((seq, item));
    }
    Ok(out)
}

async fn produce(
    core: Arc<Core>,
    mut cursor: u64,
    quarantined: bool,
    tx: mpsc::Sender<Result<pb::SubscribeResponse, Status>>,
) {
    let mut grown = core.grown.subscribe();
    loop {
        let size = match core.journal.size() {
            Ok(s) => s.max(*grown.borrow_and_update()),
            Err(e) => {
                let _ = tx.send(Err(ApiError::from(e).into())).await;
                return;
            }
        };
        while cursor < size {
            let (from, to) = (cursor, (cursor + BATCH).min(size));
            // A subscriber keeping up reads a few entries per commit, here;
            // one catching up reads its pages on a blocking thread.
            let batch = read_entries(&core, from, to, move |c, from, to| {
                read(c, from, to, quarantined)
            })
            .await;
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            for (seq, item) in batch {
                if let Some(item) = item {
                    tokio::select! {
                        () = core.cancel.cancelled() => return,
                        r = tx.send(Ok(item)) => if r.is_err() { return },
                    }
                }
                cursor = seq;
            }
        }
        tokio::select! {
            () = core.cancel.cancelled() => return,
            () = tx.closed() => return,
            r = grown.changed() => if r.is_err() { return },
        }
    }
}

#[tonic::async_trait]
impl InboxService for InboxSvc {
    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = req.into_inner();
        let (tx, rx) = mpsc::channel(self.0.settings.stream_buffer.max(1));
        let span = tracing::info_span!("inbox.subscribe", after = r.after_cursor);
        tokio::spawn(tracing::Instrument::instrument(
            produce(self.0.clone(), r.after_cursor, r.include_quarantined, tx),
            span,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
