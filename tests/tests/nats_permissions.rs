//! The broker enforces who may publish and read what, against a real
//! `nats-server` running the authorization `waymark keys nats` generates:
//! agency A cannot publish as B, read B's inbox, touch B's consumers, make
//! a consumer of its own over B's inbox, fetch stored messages directly or
//! create streams; and A's event to B, published under A's own token,
//! reaches B through B's own consumer and is acked by B.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use tokio::sync::Mutex;
use waymark_bus::provision::{self, EVENT_STREAM};
use waymark_bus::{BusConfig, subjects};
use waymark_federation::natsauth::{self, SeedFiles};
use waymark_testkit::{NatsServer, TestDir, wait_for};
use waymark_types::{AgencyId, AgencyKind, EventKind};

type Errors = Arc<Mutex<Vec<String>>>;

struct Fixture {
    _dir: TestDir,
    nats: NatsServer,
    seeds: SeedFiles,
}

fn id(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

fn fixture() -> anyhow::Result<Fixture> {
    let dir = TestDir::new("nats-permissions")?;
    let seeds = SeedFiles {
        provisioner: dir.path().join("provisioner.nk"),
        agencies: ["agency-a", "agency-b"]
            .iter()
            .map(|a| (id(a), dir.path().join(format!("{a}.nk"))))
            .collect(),
    };
    let auth = natsauth::ensure(&seeds)?;
    let nats = NatsServer::builder().extra_config(auth).start()?;
    Ok(Fixture {
        _dir: dir,
        nats,
        seeds,
    })
}

impl Fixture {
    /// Connects as agency `who` with its seed, collecting the server's
    /// asynchronous errors (permission violations arrive that way).
    async fn connect(&self, who: &str) -> anyhow::Result<(async_nats::Client, Errors)> {
        let (_, file) = self
            .seeds
            .agencies
            .iter()
            .find(|(a, _)| a.as_str() == who)
            .expect("a seeded agency");
        let seed = natsauth::load_seed(file)?.seed()?;
        let errors: Errors = Arc::default();
        let sink = errors.clone();
        let client = async_nats::ConnectOptions::new()
            .nkey(seed)
            .custom_inbox_prefix(subjects::inbox_prefix(&id(who)))
            .event_callback(move |e| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = e {
                        sink.lock().await.push(e.to_string());
                    }
                }
            })
            .connect(self.nats.url())
            .await?;
        Ok((client, errors))
    }
}

/// Waits until the server reported a permissions violation naming `subject`.
async fn refused(errors: &Errors, subject: &str) -> anyhow::Result<()> {
    let needle = format!("\"{subject}\"").to_lowercase();
    let seen = |errors: &[String]| {
        errors.iter().any(|e| {
            let e = e.to_lowercase();
            e.contains("permissions violation") && e.contains(&needle)
        })
    };
    let done = wait_for(
        Duration::from_secs(10),
        &format!("refusal of {subject}"),
        || async { seen(&errors.lock().await) },
    )
    .await;
    if done.is_err() {
        anyhow::bail!(
            "the server did not refuse {subject}; its errors: {:?}",
            errors.lock().await
        );
    }
    Ok(())
}

#[tokio::test]
async fn agency_a_cannot_publish_as_b_or_read_b_and_b_still_gets_a_s_events() -> anyhow::Result<()>
{
    let fx = fixture()?;
    let (a, b) = (id("agency-a"), id("agency-b"));
    natsauth::provision_streams(&fx.nats.url(), &fx.seeds.provisioner, &a).await?;

    let (ca, errors) = fx.connect("agency-a").await?;
    let receipt = waymark_bus::subjects::SubjectKind::Event(EventKind::Receipt);

    // Publishing under B's sender token.
    let as_b = subjects::event(&b, &a, receipt);
    ca.publish(as_b.clone(), "forged".into()).await?;
    ca.flush().await?;
    refused(&errors, &as_b).await?;

    // Reading B's inbox: B's reply prefix, event subjects addressed to B,
    // B's durable (create, info, pull, ack), and a consumer of A's own name
    // filtered on B's inbox.
    let b_inbox = subjects::inbox_filter(&b);
    let spec_b = provision::inbox_durable(&b);
    let spec_a = provision::inbox_durable(&a);
    let _s1 = ca
        .subscribe(format!("{}.>", subjects::inbox_prefix(&b)))
        .await?;
    let _s2 = ca.subscribe(b_inbox.clone()).await?;
    let _s3 = ca.subscribe("waymark.v1.evt.>").await?;
    let forbidden = [
        format!(
            "$JS.API.CONSUMER.CREATE.{EVENT_STREAM}.{}.{b_inbox}",
            spec_b.name
        ),
        format!(
            "$JS.API.CONSUMER.CREATE.{EVENT_STREAM}.{}.{b_inbox}",
            spec_a.name
        ),
        format!("$JS.API.CONSUMER.CREATE.{EVENT_STREAM}.{}", spec_a.name),
        format!("$JS.API.CONSUMER.CREATE.{EVENT_STREAM}"),
        format!(
            "$JS.API.CONSUMER.DURABLE.CREATE.{EVENT_STREAM}.{}",
            spec_a.name
        ),
        format!("$JS.API.CONSUMER.INFO.{EVENT_STREAM}.{}", spec_b.name),
        format!("$JS.API.CONSUMER.MSG.NEXT.{EVENT_STREAM}.{}", spec_b.name),
        format!("$JS.API.CONSUMER.DELETE.{EVENT_STREAM}.{}", spec_b.name),
        format!("$JS.ACK.{EVENT_STREAM}.{}.1.1.1.0.0", spec_b.name),
        // Stored messages fetched directly, and stream changes.
        format!("$JS.API.STREAM.MSG.GET.{EVENT_STREAM}"),
        format!("$JS.API.DIRECT.GET.{EVENT_STREAM}"),
        format!("$JS.API.DIRECT.GET.{EVENT_STREAM}.{b_inbox}"),
        format!("$JS.API.STREAM.CREATE.{EVENT_STREAM}"),
        format!("$JS.API.STREAM.UPDATE.{EVENT_STREAM}"),
        format!("$JS.API.STREAM.PURGE.{EVENT_STREAM}"),
        format!("$JS.API.STREAM.DELETE.{EVENT_STREAM}"),
    ];
    for subject in &forbidden {
        ca.publish(subject.clone(), "{}".into()).await?;
    }
    ca.flush().await?;
    for sub in [
        format!("{}.>", subjects::inbox_prefix(&b)),
        b_inbox.clone(),
        "waymark.v1.evt.>".to_owned(),
    ] {
        refused(&errors, &sub).await?;
    }
    for subject in &forbidden {
        refused(&errors, subject).await?;
    }

    // A consumer of A's own name whose subject says A's filter but whose
    // body asks for B's inbox: the server checks they match.
    let body = serde_json::json!({
        "stream_name": EVENT_STREAM,
        "config": { "durable_name": spec_a.name, "filter_subject": b_inbox, "ack_policy": "explicit" },
        "action": "create",
    });
    let reply = ca
        .request(
            format!(
                "$JS.API.CONSUMER.CREATE.{EVENT_STREAM}.{}.{}",
                spec_a.name, spec_a.filter
            ),
            serde_json::to_vec(&body)?.into(),
        )
        .await?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    assert!(
        answer.get("error").is_some(),
        "a mismatched filter was accepted: {answer}"
    );

    // Positive control: B binds its own inbox consumer through its
    // permissions, A publishes to B under its own token, B receives and acks.
    let (cb, b_errors) = fx.connect("agency-b").await?;
    let js_b = jetstream::new(cb);
    let cfg_b = BusConfig::new(b.clone(), AgencyKind::Shelter);
    let stream = provision::ensure_stream(&js_b, provision::event_stream(&cfg_b)).await?;
    let consumer = provision::durable(&stream, &cfg_b, spec_b.name.clone(), spec_b.filter).await?;

    let js_a = jetstream::new(ca.clone());
    let own = subjects::event(&a, &b, receipt);
    js_a.publish(own.clone(), "hello b".into()).await?.await?;

    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await?;
    let msg = batch
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("B received nothing"))?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(msg.subject.as_str(), own);
    assert_eq!(msg.payload.as_ref(), b"hello b");
    msg.double_ack()
        .await
        .map_err(|e| anyhow::anyhow!("B's ack was refused: {e}"))?;
    let mut consumer = consumer;
    let info = consumer.info().await?;
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.delivered.stream_sequence, 1);
    // The forged message never reached the stream.
    assert_eq!(stream.clone().info().await?.state.messages, 1);
    assert!(
        b_errors.lock().await.is_empty(),
        "B was refused something it needs: {:?}",
        b_errors.lock().await
    );
    Ok(())
}
