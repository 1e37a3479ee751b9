//! gRPC over TLS with required client certificates, against a real agency
//! process started by the launcher with `grpc_tls` (the launcher's own
//! health checks already go over TLS with its client certificate): a
//! back-office client with a certificate from the federation's CA gets
//! health and opens a case; without a client certificate, with one from
//! another CA, or in plaintext, it gets nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions, RetryPolicy, TlsFiles};
use waymark_federation::tls::{self, CertPair};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions, SAMPLE};
use waymark_testkit::TestDir;
use waymark_types::AgencyKind;

fn options(tls_dir: &Path, client: Option<(PathBuf, PathBuf)>) -> ConnectOptions {
    let (client_cert_file, client_key_file) = client.unzip();
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        tls: Some(TlsFiles {
            ca_file: tls_dir.join("ca.crt"),
            client_cert_file,
            client_key_file,
            domain: Some("localhost".to_owned()),
        }),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ConnectOptions::default()
    }
}

/// Connects and asks for health; the error text when anything fails.
async fn health(url: &str, opts: ConnectOptions) -> Result<(), String> {
    let client = Client::connect(url, opts)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let answer = HealthClient::new(client.channel())
        .check(HealthCheckRequest::default())
        .await
        .map_err(|s| format!("{s}"))?;
    if answer.get_ref().status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("status {}", answer.get_ref().status))
    }
}

fn write(dir: &Path, stem: &str, pair: &CertPair) -> (PathBuf, PathBuf) {
    tls::write_pair(dir, stem, pair).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requires_a_client_certificate_from_the_federation_ca() {
    let dir = TestDir::new("grpc-tls").unwrap();
    let mut opts = LaunchOptions::sample(
        dir.path(),
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.members = vec![
        *SAMPLE
            .iter()
            .find(|a| a.kind == AgencyKind::Police)
            .unwrap(),
    ];
    opts.grpc_tls = true;
    let fed = Federation::start(opts).await.unwrap();
    let police = fed.endpoints().values().next().unwrap().clone();
    let url = police.url();
    assert!(url.starts_with("https://"), "{url}");
    let tls_dir = fed.layout().tls_dir();
    let clients = dir.path().join("clients");

    // A back-office system with its own certificate from the federation CA.
    let ca = tls::read_pair(&tls_dir, "ca").unwrap();
    let good = write(
        &clients,
        "backoffice",
        &tls::issue_client(&ca, "backoffice", 1).unwrap(),
    );
    health(&url, options(&tls_dir, Some(good.clone())))
        .await
        .unwrap();
    let client = Client::connect(&url, options(&tls_dir, Some(good.clone())))
        .await
        .unwrap();
    let opened = client
        .cases()
        .open(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Labour as i32],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!opened.case_id.is_empty());

    // No client certificate: the server ends the handshake.
    let none = health(&url, options(&tls_dir, None)).await;
    assert!(none.is_err(), "served a client without a certificate");

    // A certificate from another CA, even with the same name.
    let other_ca = tls::new_ca("Waymark local federation CA", 1).unwrap();
    let stranger = write(
        &clients,
        "stranger",
        &tls::issue_client(&other_ca, "backoffice", 1).unwrap(),
    );
    let other = health(&url, options(&tls_dir, Some(stranger))).await;
    assert!(other.is_err(), "served a client certified by another CA");

    // Plaintext to the TLS port.
    let plain = health(
        &format!("http://{}", police.addr),
        ConnectOptions {
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..ConnectOptions::default()
        },
    )
    .await;
    assert!(plain.is_err(), "served plaintext");

    // The server is still there for the right client after the refusals.
    health(&url, options(&tls_dir, Some(good))).await.unwrap();
    fed.stop().await.unwrap();
}
