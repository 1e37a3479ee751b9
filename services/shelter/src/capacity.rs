//! The shelter's capacity as last recorded: a read model of this agency's
//! own journal, kept in step with it.
//!
//! `capacity_updated` events are agency-level (no case), so no case index
//! finds them. The model remembers the last journal seq it read and, on
//! every query, reads only the entries after it ([`Recorder::facts_after`]),
//! keeping the newest capacity this agency originated. After a restart the
//! first query reads the journal once from the start. Queries are
//! serialised by one async mutex; an `UpdateCapacity` answers only once its
//! entry is durable, so a later `GetCapacity` always sees it.

use tokio::sync::Mutex;
use waymark_agency::{ApiError, Recorder};
use waymark_proto::v1 as pb;
use waymark_proto::waymark::shelter::v1 as shelter;

/// Journal entries read per step while catching up.
const STEP: usize = 512;

#[derive(Debug, Default)]
struct Seen {
    /// The last journal seq read.
    cursor: u64,
    /// The newest own `capacity_updated` and when it happened.
    latest: Option<(pb::CapacityUpdated, Option<prost_types::Timestamp>)>,
}

/// The read model.
#[derive(Debug, Default)]
pub(crate) struct Capacity(Mutex<Seen>);

impl Capacity {
    /// The capacity last recorded by this agency (zeros and no time if never).
    pub(crate) async fn get(
        &self,
        rec: &Recorder,
    ) -> Result<shelter::GetCapacityResponse, ApiError> {
        let mut seen = self.0.lock().await;
        loop {
            let (facts, next) = rec.facts_after(seen.cursor, STEP).await?;
            for (_, e) in facts {
                if let Some(pb::event::Body::CapacityUpdated(c)) = e.body
                    && e.sender_id == rec.agency().as_str()
                {
                    seen.latest = Some((c, e.occurred_at));
                }
            }
            if next == seen.cursor {
                break;
            }
            seen.cursor = next;
        }
        Ok(match &seen.latest {
            Some((c, at)) => shelter::GetCapacityResponse {
                total_places: c.total_places,
                free_places: c.free_places,
                accepts_children: c.accepts_children,
                updated_at: *at,
            },
            None => shelter::GetCapacityResponse::default(),
        })
    }
}
