//! The node's gRPC server, exercised with real gRPC calls over TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use waymark_node::{NodeConfig, RunningNode, Services, Shutdown};
use waymark_proto::v1::inbox_service_client::InboxServiceClient;
use waymark_proto::v1::inbox_service_server::{InboxService, InboxServiceServer};
use waymark_proto::v1::{SubscribeRequest, SubscribeResponse};
use waymark_types::AgencyKind;

/// A real inbox service whose `Subscribe` takes `delay`, then streams one item
/// (with the requested cursor + 1) and ends. `started` counts calls that are
/// in progress or done, so tests can wait for a request to be in flight.
struct SlowInbox {
    delay: Duration,
    started: Arc<AtomicUsize>,
}

impl SlowInbox {
    fn new(delay: Duration) -> (Self, Arc<AtomicUsize>) {
        let started = Arc::new(AtomicUsize::new(0));
        (
            Self {
                delay,
                started: started.clone(),
            },
            started,
        )
    }
}

/// Waits until a `SlowInbox` call is in flight.
async fn wait_in_flight(started: &Arc<AtomicUsize>) {
    poll(|| async { (started.load(Ordering::SeqCst) > 0).then_some(()) }).await;
}

#[tonic::async_trait]
impl InboxService for SlowInbox {
    type SubscribeStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<SubscribeResponse, tonic::Status>>>;

    async fn subscribe(
        &self,
        request: tonic::Request<SubscribeRequest>,
    ) -> Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let item = SubscribeResponse {
            cursor: request.into_inner().after_cursor + 1,
            ..Default::default()
        };
        Ok(tonic::Response::new(tokio_stream::iter(vec![Ok(item)])))
    }
}

fn config(dir: &tempfile::TempDir) -> NodeConfig {
    NodeConfig::for_tests(AgencyKind::Shelter, dir.path())
}

async fn start(config: &NodeConfig, services: Services) -> RunningNode {
    waymark_node::run(config, services, Shutdown::new())
        .await
        .expect("node starts")
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connects")
}

async fn health(ch: Channel, service: &str) -> Result<i32, tonic::Status> {
    let req = HealthCheckRequest {
        service: service.to_owned(),
    };
    Ok(HealthClient::new(ch).check(req).await?.into_inner().status)
}

async fn reflect(ch: Channel, req: MessageRequest) -> MessageResponse {
    let outbound = tokio_stream::iter(vec![ServerReflectionRequest {
        host: String::new(),
        message_request: Some(req),
    }]);
    let mut inbound = ServerReflectionClient::new(ch)
        .server_reflection_info(outbound)
        .await
        .expect("reflection call")
        .into_inner();
    let first = inbound.next().await.expect("one response").expect("ok");
    first.message_response.expect("has a response")
}

#[tokio::test]
async fn health_and_reflection_are_served_on_port_0() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&config(&dir), Services::new()).await;
    assert_ne!(node.local_addr().port(), 0, "reports the real bound port");
    let ch = channel(node.local_addr()).await;

    assert_eq!(
        health(ch.clone(), "").await.unwrap(),
        ServingStatus::Serving as i32
    );

    let MessageResponse::ListServicesResponse(list) =
        reflect(ch.clone(), MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    assert!(
        names.contains(&"grpc.reflection.v1.ServerReflection"),
        "{names:?}"
    );

    for symbol in [
        "waymark.v1.CaseService",
        "waymark.v1.Envelope",
        "waymark.police.v1.PoliceService",
    ] {
        let resp = reflect(
            ch.clone(),
            MessageRequest::FileContainingSymbol(symbol.to_owned()),
        )
        .await;
        let MessageResponse::FileDescriptorResponse(files) = resp else {
            panic!("{symbol}: expected file descriptors, got {resp:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty(), "{symbol}");
    }
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn added_services_report_serving_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let services =
        Services::new().add_service(InboxServiceServer::new(SlowInbox::new(Duration::ZERO).0));
    assert_eq!(services.names(), ["waymark.v1.InboxService"]);
    let node = start(&config(&dir), services).await;
    let ch = channel(node.local_addr()).await;
    assert_eq!(
        health(ch.clone(), "waymark.v1.InboxService").await.unwrap(),
        ServingStatus::Serving as i32
    );
    let mut stream = InboxServiceClient::new(ch)
        .subscribe(SubscribeRequest {
            after_cursor: 41,
            include_quarantined: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.next().await.unwrap().unwrap().cursor, 42);
    node.stop().await.expect("clean stop");
}

/// tonic's decoder rejects a message over `max_decoding_message_size` with
/// OUT_OF_RANGE ("decoded message length too large"), not RESOURCE_EXHAUSTED
/// (tonic 0.14.9, `codec/decode.rs`); RESOURCE_EXHAUSTED is reserved for a
/// compressed message that inflates past the limit.
#[tokio::test]
async fn oversized_request_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.grpc.max_request_bytes = 4096;
    let node = start(&cfg, Services::new()).await;
    let ch = channel(node.local_addr()).await;

    let status = health(ch.clone(), &"x".repeat(5000)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("limit is: 4096 bytes"),
        "{status:?}"
    );
    // Just under the limit is decoded (and answered NOT_FOUND: unknown service).
    let status = health(ch, &"x".repeat(4000)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn over_the_concurrency_limit_is_resource_exhausted_but_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.grpc.max_concurrent_requests = 1;
    let (slow_inbox, started) = SlowInbox::new(Duration::from_secs(3));
    let services = Services::new().add_service(InboxServiceServer::new(slow_inbox));
    let node = start(&cfg, services).await;
    let ch = channel(node.local_addr()).await;

    let mut slow_client = InboxServiceClient::new(ch.clone());
    let slow = tokio::spawn(async move {
        slow_client
            .subscribe(SubscribeRequest::default())
            .await
            .map(drop)
    });
    wait_in_flight(&started).await;
    let asked = Instant::now();
    let status = InboxServiceClient::new(ch.clone())
        .subscribe(SubscribeRequest::default())
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("grpc.max_concurrent_requests"),
        "{status:?}"
    );
    // Queued, it would wait for the 3 s request to finish.
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "shed at once, not queued"
    );
    // Health checks are never shed: the busy agency is alive and serving.
    assert_eq!(
        health(ch.clone(), "").await.unwrap(),
        ServingStatus::Serving as i32
    );
    assert!(!slow.is_finished(), "the slot was still taken");

    slow.await.unwrap().expect("the admitted request completes");
    assert_eq!(health(ch, "").await.unwrap(), ServingStatus::Serving as i32);
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.shutdown.drain_delay = Duration::from_millis(300);
    cfg.shutdown.grace_period = Duration::from_secs(10);
    let (slow_inbox, started_calls) = SlowInbox::new(Duration::from_secs(3));
    let services = Services::new().add_service(InboxServiceServer::new(slow_inbox));
    let node = start(&cfg, services).await;
    let addr = node.local_addr();
    let shutdown = node.shutdown().clone();

    let hook_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = hook_ran.clone();
    shutdown.on_drained("mark", async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(())
    });
    let token = shutdown.token().clone();
    shutdown.spawn("background-loop", async move {
        token.cancelled().await;
        Ok::<_, std::io::Error>(())
    });
    assert_eq!(shutdown.running_tasks(), ["background-loop"]);

    let mut client = InboxServiceClient::new(channel(addr).await);
    let in_flight = tokio::spawn(async move {
        let mut s = client
            .subscribe(SubscribeRequest {
                after_cursor: 6,
                include_quarantined: false,
            })
            .await?
            .into_inner();
        Ok::<_, tonic::Status>(s.next().await.expect("one item")?.cursor)
    });
    wait_in_flight(&started_calls).await;

    let started = Instant::now();
    let waiting = tokio::spawn(node.wait());
    shutdown.trigger();

    // During the drain delay: still accepting, but health says NOT_SERVING.
    let not_serving = ServingStatus::NotServing as i32;
    poll(|| async {
        let status = health(channel(addr).await, "").await.ok();
        (status == Some(not_serving)).then_some(())
    })
    .await;
    assert_eq!(
        health(channel(addr).await, "waymark.v1.InboxService")
            .await
            .unwrap(),
        ServingStatus::NotServing as i32
    );

    // After it: the listener is closed, new connections are refused ...
    poll(|| async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the listener must close while the request is still in flight"
    );

    // ... while the in-flight request still completes.
    assert_eq!(
        in_flight
            .await
            .unwrap()
            .expect("in-flight request completes"),
        7
    );
    waiting.await.unwrap().expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within the grace period"
    );
    assert!(
        hook_ran.load(std::sync::atomic::Ordering::SeqCst),
        "hook ran"
    );
    assert!(shutdown.running_tasks().is_empty());
}

#[tokio::test]
async fn a_failed_task_triggers_shutdown_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&config(&dir), Services::new()).await;
    node.shutdown().spawn("journal-writer", async {
        Err::<(), _>(std::io::Error::other("disk on fire"))
    });
    let err = tokio::time::timeout(Duration::from_secs(5), node.wait())
        .await
        .expect("shutdown triggered by the failure")
        .unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("\"journal-writer\" failed"), "{text}");
}

#[tokio::test]
async fn grace_period_bounds_a_stuck_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.shutdown.grace_period = Duration::from_millis(300);
    let node = start(&cfg, Services::new()).await;
    node.shutdown().spawn("stuck", async {
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let started = Instant::now();
    let err = node.stop().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("abandoned: task stuck"), "{source}");
}

/// Polls `f` every 20 ms until it returns `Some`, for at most 5 s.
async fn poll<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not reached in 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
