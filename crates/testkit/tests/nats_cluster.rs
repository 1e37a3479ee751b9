//! A three-node JetStream cluster on loopback: an R3 stream keeps serving
//! when one node crashes, and the node rejoins after a restart.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::{self, StorageType};
use waymark_testkit::{NatsCluster, connect_urls, wait_for};

#[tokio::test]
async fn r3_stream_survives_one_node_crash() -> Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    let (_client, js) = connect_urls(cluster.urls()).await?;
    let mut stream = js
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["evt.>".into()],
            storage: StorageType::File,
            num_replicas: 3,
            ..Default::default()
        })
        .await?;
    let publish = |id: String| {
        let js = js.clone();
        async move {
            let message = Publish::build().payload(id.clone().into()).message_id(id);
            anyhow::Ok(js.send_publish("evt.x", message).await?.await?)
        }
    };
    // The stream's subject interest reaches every node through the routes a
    // moment after create_stream returns; until then a publish can find no
    // stream. Retrying is safe: the Msg-Id dedups a publish that did land.
    wait_for(
        Duration::from_secs(10),
        "first publish to the R3 stream",
        || {
            let publish = &publish;
            async move { publish("before".into()).await.is_ok() }
        },
    )
    .await?;

    cluster.node_mut(2).kill()?;
    // With two of three nodes up the stream keeps quorum (maybe after a
    // leader election), so publishing succeeds again soon.
    wait_for(
        Duration::from_secs(20),
        "publish with one node down",
        || {
            let publish = &publish;
            async move { publish("during".into()).await.is_ok() }
        },
    )
    .await?;

    cluster.node_mut(2).restart()?;
    let info = stream.info().await?;
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.config.num_replicas, 3);
    Ok(())
}
