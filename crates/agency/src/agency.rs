//! [`Agency`]: one agency's journal, local store, bus and background
//! follower, assembled; and the [`Core`] every service shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use waymark_bus::{Bus, BusConfig, Directory};
use waymark_crypto::AgencyKey;
use waymark_journal::{Journal, JournalConfig, SledConfig, SledStore};
use waymark_node::{NodeConfig, Services, Shutdown};
use waymark_policy::{RuleSetRef, RuleSets};
use waymark_proto::v1::{
    case_service_server::CaseServiceServer, consent_service_server::ConsentServiceServer,
    handover_service_server::HandoverServiceServer, inbox_service_server::InboxServiceServer,
    journal_service_server::JournalServiceServer, referral_service_server::ReferralServiceServer,
};
use waymark_types::{AgencyId, AgencyKind};

use crate::state::Cases;
use crate::store::{LocalStore, StoreError};
use crate::{case_svc, consent_svc, follow, handover_svc, inbox_svc, journal_svc, referral_svc};

/// Everything [`Agency::start`] needs besides the broker, keys and rules.
#[derive(Debug, Clone)]
pub struct AgencySettings {
    /// The bus settings; `bus.agency` and `bus.kind` are this agency.
    pub bus: BusConfig,
    /// The journal's directory; the agency store goes in `agency/` inside it.
    pub data_dir: PathBuf,
    /// The journal's checkpoint cadence.
    pub checkpoint_every_entries: u64,
    /// ... or after this long with new entries.
    pub checkpoint_interval: Duration,
    /// The rule set new events are made under, e.g. `bg@1`.
    pub rule_set: RuleSetRef,
    /// Writes in flight at once; the next one is answered `RESOURCE_EXHAUSTED`.
    pub max_pending_writes: usize,
    /// Items buffered per inbox or journal stream before the producer waits
    /// for the client (backpressure).
    pub stream_buffer: usize,
    /// How often the follower checks the journal size even if no commit
    /// woke it (a safety net: every journal commit wakes it at once through
    /// `Journal::on_grow`).
    pub follow_interval: Duration,
    /// Case views kept in memory.
    pub case_cache: usize,
    /// The journal index's page cache, in bytes (`journal.cache_capacity_bytes`).
    pub journal_cache_bytes: u64,
    /// The agency's X25519 key: opens personal data other agencies seal to
    /// it. `None`: it can send personal data but not receive any (events
    /// carrying some are quarantined, reason `sealed_data`).
    pub encryption_key: Option<waymark_crypto::seal::EncryptionKey>,
    /// Earlier encryption keys, kept after a rotation only to open data
    /// sealed to them while in transit.
    pub retired_encryption_keys: Vec<waymark_crypto::seal::EncryptionKey>,
}

impl AgencySettings {
    /// Settings for `agency` of `kind` with the journal in `data_dir`,
    /// production defaults and rule set `coe-cets197@1`.
    pub fn new(agency: AgencyId, kind: AgencyKind, data_dir: PathBuf) -> Self {
        Self {
            bus: BusConfig::new(agency, kind),
            data_dir,
            checkpoint_every_entries: 1000,
            checkpoint_interval: Duration::from_secs(60),
            rule_set: RuleSetRef::new("coe-cets197", 1),
            max_pending_writes: 1024,
            stream_buffer: 64,
            follow_interval: Duration::from_millis(500),
            case_cache: 10_000,
            journal_cache_bytes: SledConfig::default().cache_capacity,
            encryption_key: None,
            retired_encryption_keys: Vec::new(),
        }
    }

    /// Settings from a node configuration (agency, journal directory and
    /// checkpoint cadence, stream replicas left at the bus default).
    pub fn from_node(config: &NodeConfig) -> Self {
        let mut s = Self::new(
            config.agency.id.clone(),
            config.agency.kind,
            config.journal.data_dir.clone(),
        );
        s.checkpoint_every_entries = config.journal.checkpoint_every_entries;
        s.checkpoint_interval = config.journal.checkpoint_interval;
        s.journal_cache_bytes = config.journal.cache_capacity_bytes;
        s
    }
}

/// Starting an agency failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Opening the journal's store failed.
    #[error("opening the journal store in {dir}")]
    JournalStore {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: waymark_journal::StoreError,
    },
    /// Opening the journal failed.
    #[error("opening the journal")]
    Journal(#[source] waymark_journal::JournalError),
    /// Opening the agency store failed.
    #[error("opening the agency store")]
    Store(#[source] StoreError),
    /// The configured rule set is not in the registry.
    #[error("rule set {0} is not known")]
    UnknownRuleSet(RuleSetRef),
}

/// What every service shares.
pub(crate) struct Core {
    pub(crate) me: AgencyId,
    pub(crate) kind: AgencyKind,
    pub(crate) rule_set: RuleSetRef,
    pub(crate) rules: Arc<RuleSets>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) journal: Arc<Journal<SledStore>>,
    pub(crate) store: LocalStore,
    pub(crate) directory: Arc<Directory>,
    pub(crate) key: AgencyKey,
    pub(crate) cases: Cases,
    /// The journal size as last seen; bumped by every write and by the follower.
    pub(crate) grown: watch::Sender<u64>,
    pub(crate) writes: Semaphore,
    pub(crate) cancel: CancellationToken,
    pub(crate) settings: AgencySettings,
}

impl Core {
    /// Wakes inbox streams and the follower: the journal holds `size` entries.
    pub(crate) fn grew(&self, size: u64) {
        bump(&self.grown, size);
    }
}

/// Raises the journal size `grown` announces to `size`, waking its
/// receivers, unless it is there already.
fn bump(grown: &watch::Sender<u64>, size: u64) {
    grown.send_if_modified(|v| {
        let more = size > *v;
        if more {
            *v = size;
        }
        more
    });
}

/// One running agency: bus, journal, local store and follower. Serve it with
/// [`Agency::services`] (plus any agency-specific services) and
/// `waymark_node::run`.
pub struct Agency {
    core: Arc<Core>,
}

impl std::fmt::Debug for Agency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agency")
            .field("agency", &self.core.me)
            .finish_non_exhaustive()
    }
}

impl Agency {
    /// Opens the journal and the agency store under `settings.data_dir`,
    /// starts the bus on `js` and the follower (case index, automatic
    /// withdrawal acknowledgements, inbox wake-ups) as tasks of `shutdown`.
    /// A hook of `shutdown` waits for the bus tasks after the gRPC server
    /// has drained.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be opened; nothing is left running.
    pub fn start(
        settings: AgencySettings,
        js: async_nats::jetstream::Context,
        directory: Arc<Directory>,
        key: AgencyKey,
        rules: Arc<RuleSets>,
        shutdown: &Shutdown,
    ) -> Result<Self, StartError> {
        if rules.get(&settings.rule_set).is_none() {
            return Err(StartError::UnknownRuleSet(settings.rule_set.clone()));
        }
        let me = settings.bus.agency.clone();
        let dir = settings.data_dir.clone();
        let sled = SledConfig {
            cache_capacity: settings.journal_cache_bytes,
            ..SledConfig::default()
        };
        let store = SledStore::open(&dir, &sled).map_err(|source| StartError::JournalStore {
            dir: dir.clone(),
            source,
        })?;
        let mut jc = JournalConfig::new(me.clone());
        jc.checkpoint_every_entries = settings.checkpoint_every_entries;
        jc.checkpoint_every_ms =
            i64::try_from(settings.checkpoint_interval.as_millis()).unwrap_or(i64::MAX);
        let journal =
            Arc::new(Journal::open(store, jc, Some(key.clone())).map_err(StartError::Journal)?);
        let local = LocalStore::open(&dir.join("agency"), &dir.join("case-keys"))
            .map_err(StartError::Store)?;
        let size = journal.size().map_err(StartError::Journal)?;
        // Every commit, whoever made it (the bus journals received events
        // and receipts), wakes the follower and the inbox streams at once.
        let grown = watch::Sender::new(size);
        journal.on_grow({
            let grown = grown.clone();
            move |size| bump(&grown, size)
        });
        let cancel = shutdown.token().clone();
        let bus = Arc::new(Bus::start(
            settings.bus.clone(),
            js,
            journal.clone(),
            directory.clone(),
            key.clone(),
            rules.clone(),
            cancel.clone(),
        ));
        let core = Arc::new(Core {
            kind: settings.bus.kind,
            rule_set: settings.rule_set.clone(),
            rules,
            bus: bus.clone(),
            journal,
            store: local,
            directory,
            key,
            cases: Cases::new(me.clone(), settings.case_cache),
            grown,
            writes: Semaphore::new(settings.max_pending_writes),
            cancel: cancel.clone(),
            settings,
            me,
        });
        bus.set_sealing(Arc::new(crate::sealing::AgencySealing(Arc::downgrade(
            &core,
        ))));
        shutdown.spawn("agency-follower", follow::run(core.clone()));
        shutdown.on_drained("agency-bus", async move {
            // The bus's tasks already stop on the cancelled token; wait for
            // them once the services have let go of their handles.
            let mut bus = bus;
            for _ in 0..200 {
                match Arc::try_unwrap(bus) {
                    Ok(b) => {
                        b.shutdown().await;
                        return Ok::<(), std::convert::Infallible>(());
                    }
                    Err(b) => bus = b,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tracing::warn!("bus still referenced at shutdown; its tasks stop on cancellation");
            Ok(())
        });
        Ok(Self { core })
    }

    /// The six common services, ready for `waymark_node::run`; add
    /// agency-specific services to the returned value.
    pub fn services(&self) -> Services {
        let c = &self.core;
        Services::new()
            .add_service(CaseServiceServer::new(case_svc::CaseSvc(c.clone())))
            .add_service(ConsentServiceServer::new(consent_svc::ConsentSvc(
                c.clone(),
            )))
            .add_service(ReferralServiceServer::new(referral_svc::ReferralSvc(
                c.clone(),
            )))
            .add_service(HandoverServiceServer::new(handover_svc::HandoverSvc(
                c.clone(),
            )))
            .add_service(InboxServiceServer::new(inbox_svc::InboxSvc(c.clone())))
            .add_service(JournalServiceServer::new(journal_svc::JournalSvc(
                c.clone(),
            )))
    }

    /// This agency's id.
    pub fn id(&self) -> &AgencyId {
        &self.core.me
    }

    /// The journal (for agency-specific reads, checkpoints and tests).
    pub fn journal(&self) -> &Arc<Journal<SledStore>> {
        &self.core.journal
    }

    /// The bus (counters, and agency-specific sends).
    pub fn bus(&self) -> &Arc<Bus> {
        &self.core.bus
    }

    /// The write path shared with agency-specific services.
    pub fn recorder(&self) -> crate::Recorder {
        crate::Recorder(self.core.clone())
    }
}
