//! The harness against a real `nats-server` (install it with
//! `bash .ci/install-nats`): JetStream dedup and durable pull consumption,
//! durability across SIGKILL + restart, graceful stop, start failures, and
//! how the binary is found.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::{self, StorageType};
use futures::StreamExt as _;
use waymark_testkit::{
    Error, NatsServer, SearchInputs, TestDir, connect, find_nats_server, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A file-storage stream `EVENTS` on `evt.>`.
async fn create_events_stream(js: &async_nats::jetstream::Context) -> Result<stream::Stream> {
    Ok(js
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["evt.>".into()],
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?)
}

/// Publishes `payload` with `Nats-Msg-Id: id` and waits for the server's ack.
async fn publish(
    js: &async_nats::jetstream::Context,
    id: &str,
    payload: &str,
) -> Result<async_nats::jetstream::publish::PublishAck> {
    let message = Publish::build()
        .payload(payload.to_owned().into())
        .message_id(id);
    Ok(js.send_publish("evt.case.1", message).await?.await?)
}

#[tokio::test]
async fn jetstream_dedups_and_a_durable_pull_consumer_reads_in_order() -> Result<()> {
    let server = NatsServer::start()?;
    let jsz = server.monitor_json("/jsz")?;
    ensure!(
        jsz["config"]["sync_always"] == true,
        "sync_interval: always is not in effect: {jsz}"
    );
    let (_client, js) = connect(&server).await?;
    let stream = create_events_stream(&js).await?;

    let events = ["referral", "consent", "handover-offer", "handover-accept"];
    for (i, payload) in events.iter().enumerate() {
        let ack = publish(&js, &format!("event-{i}"), payload).await?;
        assert_eq!((ack.sequence, ack.duplicate), (i as u64 + 1, false));
    }
    // The outbox relay re-sends after a timeout: same Msg-Id, no new message.
    let again = publish(&js, "event-1", "consent").await?;
    assert!(again.duplicate, "a re-sent Msg-Id must be deduplicated");
    assert_eq!(again.sequence, 2, "a duplicate acks the original sequence");

    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("shelter-inbox".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await?;
    let mut received = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(anyhow::Error::from_boxed)?;
        received.push(String::from_utf8(message.payload.to_vec())?);
        message
            .double_ack()
            .await
            .map_err(anyhow::Error::from_boxed)?;
    }
    assert_eq!(received, events);

    let mut consumer = stream
        .get_consumer::<pull::Config>("shelter-inbox")
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let info = consumer.info().await?;
    assert_eq!(
        (
            info.num_ack_pending,
            info.num_pending,
            info.ack_floor.stream_sequence
        ),
        (0, 0, 4),
        "every message acked, none left"
    );
    Ok(())
}

#[tokio::test]
async fn acked_messages_survive_sigkill_and_restart_on_the_same_port() -> Result<()> {
    let mut server = NatsServer::start()?;
    let (client, js) = connect(&server).await?;
    let mut stream = create_events_stream(&js).await?;
    let count = 25_u64;
    for i in 0..count {
        let ack = publish(&js, &format!("event-{i}"), &format!("payload-{i}")).await?;
        assert_eq!(ack.sequence, i + 1);
    }
    let (port, old_pid) = (server.client_port(), server.pid());

    server.kill()?;
    assert_eq!(server.pid(), None);
    wait_for(TIMEOUT, "client notices the crash", || async {
        client.connection_state() != async_nats::connection::State::Connected
    })
    .await?;

    server.restart()?;
    assert_eq!(server.client_port(), port, "restart must reuse the port");
    assert_ne!(server.pid(), old_pid);
    wait_for(
        TIMEOUT,
        "client reconnects to the restarted server",
        || async { client.connection_state() == async_nats::connection::State::Connected },
    )
    .await?;

    let info = stream.info().await?;
    assert_eq!(
        (info.state.messages, info.state.last_sequence),
        (count, count),
        "every acked message must survive the crash; log:\n{}",
        server.log_tail()
    );
    for i in 0..count {
        let message = stream.get_raw_message(i + 1).await?;
        assert_eq!(message.payload, format!("payload-{i}").into_bytes());
    }
    // Dedup state survives too: re-sending an acked id is still a duplicate.
    assert!(publish(&js, "event-3", "payload-3").await?.duplicate);
    Ok(())
}

#[tokio::test]
async fn graceful_stop_then_restart_keeps_the_store() -> Result<()> {
    let store = TestDir::new("store")?;
    let mut server = NatsServer::builder()
        .store_dir(store.path())
        .sync_always(false)
        .start()?;
    assert_eq!(server.store_dir(), store.path());
    let (_client, js) = connect(&server).await?;
    create_events_stream(&js).await?;
    publish(&js, "only", "flushed on shutdown").await?;

    server.stop()?;
    assert_eq!(server.pid(), None);
    let log = std::fs::read_to_string(server.log_path())?;
    ensure!(
        log.contains("Server Exiting"),
        "no clean shutdown in log:\n{log}"
    );

    server.restart()?;
    let (_client, js) = connect(&server).await?;
    let mut stream = js.get_stream("EVENTS").await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    Ok(())
}

#[test]
fn a_server_that_cannot_start_reports_its_log() {
    let error = NatsServer::builder()
        .extra_config("this is { not valid config")
        .start()
        .expect_err("a broken config must not start");
    let message = error.to_string();
    assert!(matches!(error, Error::Exited { .. }), "{message}");
    assert!(message.contains("nats-server.log ends with"), "{message}");
    assert!(message.to_lowercase().contains("error"), "{message}");
}

#[test]
fn a_server_not_ready_in_time_is_killed_and_reports_its_log() {
    let error = NatsServer::builder()
        .ready_timeout(Duration::ZERO)
        .start()
        .expect_err("nothing is ready in zero time");
    let message = error.to_string();
    assert!(matches!(error, Error::NotReady { .. }), "{message}");
    assert!(message.contains("not ready after 0ns"), "{message}");
    assert!(
        message.contains("# waymark-testkit:"),
        "log tail missing: {message}"
    );
}

#[tokio::test]
async fn core_nats_without_jetstream() -> Result<()> {
    let server = NatsServer::builder()
        .jetstream(false)
        .name("core-only")
        .start()?;
    assert_eq!(server.monitor_json("/varz")?["server_name"], "core-only");
    let (client, js) = connect(&server).await?;
    let mut subscription = client.subscribe("ping").await?;
    client.publish("ping", "hello".into()).await?;
    let message = subscription.next().await.context("subscription ended")?;
    assert_eq!(message.payload, "hello");
    ensure!(js.query_account().await.is_err(), "JetStream should be off");
    Ok(())
}

#[test]
fn no_binary_found_names_the_install_command() {
    let error = find_nats_server(&SearchInputs::default()).expect_err("nothing to find");
    let message = error.to_string();
    assert!(message.contains("bash .ci/install-nats"), "{message}");
    assert!(
        message.contains(&waymark_testkit::install_script().display().to_string()),
        "{message}"
    );
    assert!(message.contains("nats-server 2.12+ not found"), "{message}");
}

#[cfg(unix)]
#[test]
fn too_old_servers_on_path_are_skipped_with_a_note() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = |dir: &TestDir, version: &str| -> Result<()> {
        let path = dir.path().join("nats-server");
        let script = format!("#!/bin/sh\necho 'nats-server: v{version}'\n");
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    };
    let (old, new) = (TestDir::new("old")?, TestDir::new("new")?);
    fake(&old, "2.9.10")?;
    fake(&new, "2.14.0")?;

    let only_old = SearchInputs {
        path: Some(old.path().as_os_str().to_owned()),
        ..SearchInputs::default()
    };
    let message = find_nats_server(&only_old).unwrap_err().to_string();
    assert!(message.contains("is v2.9.10, older than 2.12"), "{message}");
    assert!(message.contains("bash .ci/install-nats"), "{message}");

    let both = SearchInputs {
        path: Some(std::env::join_paths([old.path(), new.path()])?),
        ..SearchInputs::default()
    };
    let found = find_nats_server(&both)?;
    assert_eq!(found.path, new.path().join("nats-server"));
    assert_eq!(found.version.to_string(), "2.14.0");
    assert_eq!(found.notes.len(), 1, "{:?}", found.notes);
    Ok(())
}

#[test]
fn the_real_binary_is_found_and_recent() -> Result<()> {
    let found =
        find_nats_server(&SearchInputs::from_env()).context("run `bash .ci/install-nats` first")?;
    assert!(found.version >= waymark_testkit::MIN_VERSION);
    Ok(())
}
