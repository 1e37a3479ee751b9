//! `waymark import htcds` (the `waymark_client::htcds` library behind it)
//! against a real police agency process: the sample CSV imports its good
//! rows and reports each bad one with its row number and reason; the cases
//! are at the agency (ListCases, GetCase, timelines with the signal and the
//! closure); a second run records nothing new; a row edited since the first
//! run is rejected by the agency, not imported twice.

use std::collections::BTreeMap;

use waymark_client::htcds::{self, ImportOptions, Report, RowOutcome};
use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions, SAMPLE};
use waymark_testkit::{TestDir, workspace_root};
use waymark_types::AgencyKind;

fn sample() -> String {
    std::fs::read_to_string(workspace_root().join("crates/client/tests/data/htcds_sample.csv"))
        .unwrap()
}

fn cases_by_record(report: &Report) -> BTreeMap<String, String> {
    report
        .rows
        .iter()
        .filter_map(|r| match &r.outcome {
            RowOutcome::Imported { case_id, .. } | RowOutcome::AlreadyPresent { case_id } => {
                Some((r.record_id.clone(), case_id.clone()))
            }
            RowOutcome::Rejected { .. } => None,
        })
        .collect()
}

async fn all_cases(client: &Client) -> Vec<pb::CaseView> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .cases()
            .list(pb::ListCasesRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap();
        out.extend(page.cases);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htcds_import_is_rerunnable_and_reports_bad_rows() {
    let dir = TestDir::new("htcds-import").unwrap();
    let mut opts = LaunchOptions::sample(
        dir.path(),
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.members = SAMPLE
        .iter()
        .filter(|a| a.kind == AgencyKind::Police)
        .copied()
        .collect();
    let fed = Federation::start(opts).await.unwrap();
    let police = fed.endpoints().values().next().unwrap().url();
    let client = Client::connect(&police, ConnectOptions::default())
        .await
        .unwrap();
    let text = sample();
    let import = ImportOptions::default();

    // First run: five good rows, six bad ones, each with row and reason.
    let first = htcds::import(&client, &text, &import).await.unwrap();
    assert_eq!(
        (first.imported(), first.already_present(), first.rejected()),
        (5, 0, 6),
        "{first}"
    );
    let rejected: Vec<(usize, &str)> = first.rejections().map(|(r, why)| (r.row, why)).collect();
    let expect: [(usize, &str); 6] = [
        (7, "cas_Id is empty"),
        (8, "wmk_IdentificationChannel: \"Carrier pigeon\""),
        (9, "vic_TypeOfExploitation: \"Juggling\""),
        (10, "cas_Id HT-2024-0001 repeats row 2"),
        (11, "cas_ReasonForCaseClosure: \"Moved away\""),
        (12, "has 4 fields, the header has 13"),
    ];
    assert_eq!(rejected.len(), expect.len(), "{first}");
    for ((row, why), (want_row, want)) in rejected.iter().zip(expect) {
        assert_eq!(*row, want_row, "{first}");
        assert!(why.contains(want), "row {row}: {why:?} should say {want:?}");
    }
    let text_report = first.to_string();
    assert!(text_report.contains("row 8 (cas_Id HT-2024-0007): rejected: "));
    assert!(text_report.ends_with("imported 5, already present 0, rejected 6"));
    assert!(first.ignored_columns.contains(&"prs_Gender".to_owned()));
    for r in &first.rows {
        if let RowOutcome::Imported { recorded, .. } = &r.outcome {
            assert!(recorded.contains(&"case opened"), "{r:?}");
        }
    }

    // The good rows are cases at the agency, as the columns say.
    let cases = cases_by_record(&first);
    assert_eq!(cases.len(), 5);
    let listed = all_cases(&client).await;
    assert_eq!(listed.len(), 5, "{listed:#?}");
    for id in cases.values() {
        assert!(listed.iter().any(|c| &c.case_id == id), "{id} is listed");
    }
    let view = |record: &str| {
        let case_id = cases[record].clone();
        let client = client.clone();
        async move {
            client
                .cases()
                .get(pb::GetCaseRequest { case_id })
                .await
                .unwrap()
                .case
                .unwrap()
        }
    };
    let kinds = |record: &str| {
        let case_id = cases[record].clone();
        let client = client.clone();
        async move {
            client
                .cases()
                .timeline(pb::GetCaseTimelineRequest { case_id })
                .await
                .unwrap()
                .entries
                .into_iter()
                .map(|e| e.event_kind)
                .collect::<Vec<_>>()
        }
    };
    let v1 = view("HT-2024-0001").await;
    assert_eq!(v1.status, pb::CaseStatus::Open as i32);
    assert!(!v1.presumed_child);
    assert_eq!(
        kinds("HT-2024-0001").await,
        ["case_opened", "signal_received"]
    );
    assert!(view("HT-2024-0002").await.presumed_child, "Minor");
    assert!(view("HT-2024-0003").await.presumed_child, "Unknown age");
    // A form and no indicator: still a signal.
    assert_eq!(
        kinds("HT-2024-0003").await,
        ["case_opened", "signal_received"]
    );
    let v4 = view("HT-2024-0004").await;
    assert_eq!(v4.status, pb::CaseStatus::Closed as i32);
    assert_eq!(v4.outcome, pb::CaseOutcome::Reintegrated as i32);
    assert_eq!(
        kinds("HT-2024-0004").await,
        ["case_opened", "signal_received", "case_closed"]
    );
    assert_eq!(
        view("HT-2024-0005").await.outcome,
        pb::CaseOutcome::Transferred as i32
    );

    // Second run: nothing new, same cases, same bad rows.
    let second = htcds::import(&client, &text, &import).await.unwrap();
    assert_eq!(
        (
            second.imported(),
            second.already_present(),
            second.rejected()
        ),
        (0, 5, 6),
        "{second}"
    );
    assert_eq!(cases_by_record(&second), cases);
    assert_eq!(all_cases(&client).await.len(), 5);
    assert_eq!(kinds("HT-2024-0004").await.len(), 3);

    // A row edited in the source since it was imported is refused by the
    // agency (same key, different request), and the other rows replay.
    let edited = text.replacen(
        "HT-2024-0003,Active,,,Hotline,Unknown,Begging",
        "HT-2024-0003,Active,,,Hotline,Unknown,Labour",
        1,
    );
    assert_ne!(edited, text);
    let third = htcds::import(&client, &edited, &import).await.unwrap();
    assert_eq!(
        (third.imported(), third.already_present(), third.rejected()),
        (0, 4, 7),
        "{third}"
    );
    let (row, why) = third.rejections().find(|(r, _)| r.row == 4).unwrap();
    assert_eq!(row.record_id, "HT-2024-0003");
    assert!(why.contains("changed since it was first imported"), "{why}");
    assert!(why.contains("idempotency_key"), "{why}");
    assert_eq!(all_cases(&client).await.len(), 5);

    // Another source system with colliding record ids imports its own.
    let other = ImportOptions {
        source: "other-system".into(),
        ..ImportOptions::default()
    };
    let fourth = htcds::import(&client, &text, &other).await.unwrap();
    assert_eq!(fourth.imported(), 5, "{fourth}");
    assert_eq!(all_cases(&client).await.len(), 10);
    fed.stop().await.unwrap();
}
