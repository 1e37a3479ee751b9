//! A back office at a police agency opens a case, records the person's
//! consent, forwards it to a shelter and refers the case there. It also
//! shows a refusal decoded: a referral for a purpose the consent does not
//! cover.
//!
//! ```text
//! cargo run --release -p waymark-cli -- up        # prints the agencies' addresses
//! cargo run -p waymark-client --example open_and_refer -- \
//!     http://127.0.0.1:PORT_OF_bg-police-sofia bg-shelter-sofia
//! ```

use std::io::Write;

use anyhow::{Context, bail};
use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions, Error};

/// What the example did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) case_id: String,
    pub(crate) consent_id: String,
    pub(crate) referral_id: String,
    /// The rule that refused the referral outside the consent's scope.
    pub(crate) refused_rule: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, shelter_id] = args.as_slice() else {
        bail!("usage: open_and_refer POLICE_ADDRESS SHELTER_ID");
    };
    let o = run(address, shelter_id).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "case      {}", o.case_id)?;
    writeln!(out, "consent   {}", o.consent_id)?;
    writeln!(out, "referral  {}", o.referral_id)?;
    writeln!(
        out,
        "out of the consent's scope, refused by rule {}",
        o.refused_rule
    )?;
    Ok(())
}

fn shelter(id: &str) -> pb::SendTo {
    pb::SendTo {
        recipient_id: id.to_owned(),
        recipient_kind: pb::AgencyKind::Shelter as i32,
        ..Default::default()
    }
}

pub(crate) async fn run(address: &str, shelter_id: &str) -> anyhow::Result<Outcome> {
    let client = Client::connect(address, ConnectOptions::default())
        .await
        .with_context(|| format!("connecting to {address}"))?;

    // 1. Open the case. No idempotency key given: the client makes one for
    //    this call and keeps it across retries.
    let opened = client
        .cases()
        .open(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Labour as i32],
            ..Default::default()
        })
        .await?;
    let case_id = opened.case_id;

    // 2. The person consents to sharing with shelters, for accommodation.
    let valid_until = now_plus_days(90);
    let granted = client
        .consents()
        .grant(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            consent: Some(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                    purposes: vec![
                        pb::Purpose::Accommodation as i32,
                        pb::Purpose::Assistance as i32,
                    ],
                    categories: vec![
                        pb::DataCategory::CaseCore as i32,
                        pb::DataCategory::Assistance as i32,
                    ],
                    ..Default::default()
                }),
                valid_until: Some(valid_until),
                method: pb::ConsentMethod::Written as i32,
                obtained_by_role: "social worker".into(),
                language: "en".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;

    // 3. The shelter learns of the consent (so it can check the basis).
    client
        .cases()
        .forward_event(pb::ForwardEventRequest {
            case_id: case_id.clone(),
            event_id: granted.consent_id.clone(),
            send_to: Some(shelter(shelter_id)),
            ..Default::default()
        })
        .await?;

    // 4. A referral for a purpose the consent does not cover is refused
    //    before anything is recorded; the error carries the rule code.
    let on_consent = pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(
            granted.consent_id.clone(),
        )),
    };
    let mut out_of_scope = shelter(shelter_id);
    out_of_scope.purpose = pb::Purpose::Monitoring as i32;
    out_of_scope.basis = Some(on_consent.clone());
    let refused = client
        .referrals()
        .request(pb::RequestReferralRequest {
            case_id: case_id.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(out_of_scope),
            ..Default::default()
        })
        .await;
    let refused_rule = match refused {
        Err(Error::FailedPrecondition { rule, .. }) => rule,
        Err(e) => return Err(e.into()),
        Ok(_) => bail!("a referral outside the consent's purposes was recorded"),
    };

    // 5. The referral on the consent.
    let mut to_shelter = shelter(shelter_id);
    to_shelter.purpose = pb::Purpose::Accommodation as i32;
    to_shelter.basis = Some(on_consent);
    let referred = client
        .referrals()
        .request(pb::RequestReferralRequest {
            case_id: case_id.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(to_shelter),
            ..Default::default()
        })
        .await?;

    Ok(Outcome {
        case_id,
        consent_id: granted.consent_id,
        referral_id: referred.referral_id,
        refused_rule,
    })
}

/// Now plus `days`, as a protobuf timestamp.
fn now_plus_days(days: u64) -> waymark_client::prost_types::Timestamp {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
    waymark_client::prost_types::Timestamp::from(t)
}
