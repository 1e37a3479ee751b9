//! Typed calls over the services every agency serves (`waymark.v1`) and the
//! agency-specific ones (`waymark.<kind>.v1`), one method per RPC.
//!
//! Recording calls go through [`Client::write`] (idempotency key, retries
//! with the same key); the others through [`Client::read`]. Requests and
//! responses are the generated [`waymark_proto`] messages.

use tonic::Streaming;
use tonic::transport::Channel;
use waymark_proto::v1 as pb;
use waymark_proto::v1::{
    case_service_client::CaseServiceClient, consent_service_client::ConsentServiceClient,
    handover_service_client::HandoverServiceClient, inbox_service_client::InboxServiceClient,
    journal_service_client::JournalServiceClient, referral_service_client::ReferralServiceClient,
};
use waymark_proto::waymark::{labour, ngo, police, returndesk, shelter};

use crate::{Client, Error, Idempotent};

macro_rules! idempotent {
    ($($t:ty),* $(,)?) => {
        $(impl Idempotent for $t {
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }
            fn set_idempotency_key(&mut self, key: String) {
                self.idempotency_key = key;
            }
        })*
    };
}

idempotent!(
    pb::OpenCaseRequest,
    pb::RecordRefusalRequest,
    pb::ForwardEventRequest,
    pb::CloseCaseRequest,
    pb::EraseCaseRequest,
    pb::GrantConsentRequest,
    pb::WithdrawConsentRequest,
    pb::RequestReferralRequest,
    pb::MarkReferralReceivedRequest,
    pb::AcceptReferralRequest,
    pb::RejectReferralRequest,
    pb::StartReferralRequest,
    pb::CompleteReferralRequest,
    pb::FailReferralRequest,
    pb::CancelReferralRequest,
    pb::OfferHandoverRequest,
    pb::AcceptHandoverRequest,
    pb::RejectHandoverRequest,
    pb::CancelHandoverRequest,
    police::v1::RecordSignalRequest,
    police::v1::DecideReasonableGroundsRequest,
    police::v1::ConcludeIdentificationRequest,
    police::v1::RecordProceedingsStatusRequest,
    shelter::v1::UpdateCapacityRequest,
    shelter::v1::AdmitPersonRequest,
    shelter::v1::DischargePersonRequest,
    shelter::v1::RecordServiceDeliveredRequest,
    shelter::v1::AgreeSafetyPlanRequest,
    shelter::v1::StartReflectionPeriodRequest,
    ngo::v1::RecordOutreachContactRequest,
    ngo::v1::RecordHotlineIntakeRequest,
    ngo::v1::RecordAssistanceRequest,
    ngo::v1::RecordMonitoringContactRequest,
    returndesk::v1::RequestReturnRequest,
    returndesk::v1::AssessReturnRiskRequest,
    returndesk::v1::IssueTravelDocumentsRequest,
    returndesk::v1::ScheduleReturnRequest,
    returndesk::v1::RecordDepartureRequest,
    returndesk::v1::ConfirmReceptionRequest,
    labour::v1::AgreeReintegrationPlanRequest,
    labour::v1::RecordReintegrationMeasureRequest,
    labour::v1::ScheduleMonitoringRequest,
    labour::v1::RecordMonitoringVisitRequest,
);

/// Declares a handle on [`Client`] for one service and its methods:
/// `write` methods record (idempotency key, retried with the same key),
/// `read` methods only read (retried).
macro_rules! service {
    (
        $(#[$hdoc:meta])* $handle:ident, $accessor:ident, $svc:ty;
        $( $(#[$doc:meta])* $kind:ident $name:ident = $rpc:ident($req:ty) -> $resp:ty; )*
    ) => {
        $(#[$hdoc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $handle<'a>(&'a Client);

        impl Client {
            $(#[$hdoc])*
            pub fn $accessor(&self) -> $handle<'_> {
                $handle(self)
            }
        }

        impl $handle<'_> {
            /// The generated tonic client of this service over the same
            /// connection, for calls without retries or with your own.
            pub fn raw(&self) -> $svc {
                <$svc>::new(self.0.channel())
            }

            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// The agency's refusal or failure, decoded ([`Error`]),
                /// after retries of transient failures.
                pub async fn $name(&self, request: $req) -> Result<$resp, Error> {
                    self.0
                        .$kind(request, |ch: Channel, r| async move {
                            <$svc>::new(ch).$rpc(r).await
                        })
                        .await
                }
            )*
        }
    };
}

service! {
    /// `waymark.v1.CaseService`: open, read, refuse, forward, close.
    Cases, cases, CaseServiceClient<Channel>;
    /// Opens a case; this agency becomes its custodian.
    write open = open_case(pb::OpenCaseRequest) -> pb::OpenCaseResponse;
    /// This agency's current view of a case.
    read get = get_case(pb::GetCaseRequest) -> pb::GetCaseResponse;
    /// Cases this agency knows, newest first, one page.
    read list = list_cases(pb::ListCasesRequest) -> pb::ListCasesResponse;
    /// Every journal entry of a case at this agency, in order.
    read timeline = get_case_timeline(pb::GetCaseTimelineRequest) -> pb::GetCaseTimelineResponse;
    /// The personal data this agency holds for a case, decrypted.
    read personal_data = get_personal_data(pb::GetPersonalDataRequest) -> pb::GetPersonalDataResponse;
    /// Records the person's refusal of assistance, referral or disclosure.
    write record_refusal = record_refusal(pb::RecordRefusalRequest) -> pb::RecordRefusalResponse;
    /// Forwards an event from this agency's journal to another agency.
    write forward_event = forward_event(pb::ForwardEventRequest) -> pb::ForwardEventResponse;
    /// Closes a case with an outcome (custodian only).
    write close = close_case(pb::CloseCaseRequest) -> pb::CloseCaseResponse;
    /// Erases the personal data this agency holds for a case (its per-case
    /// key is destroyed), attests it and tells every agency it sent the data
    /// to, which erase theirs and acknowledge.
    write erase = erase_case(pb::EraseCaseRequest) -> pb::EraseCaseResponse;
    /// Who was told of this agency's erasure of a case, and who acknowledged.
    read erasure_status = get_erasure_status(pb::GetErasureStatusRequest) -> pb::GetErasureStatusResponse;
}

service! {
    /// `waymark.v1.ConsentService`: consents, withdrawals, disclosure checks.
    Consents, consents, ConsentServiceClient<Channel>;
    /// Records a consent obtained by this agency.
    write grant = grant_consent(pb::GrantConsentRequest) -> pb::GrantConsentResponse;
    /// Withdraws a consent from a time on and notifies its recipients.
    write withdraw = withdraw_consent(pb::WithdrawConsentRequest) -> pb::WithdrawConsentResponse;
    /// Consents this agency knows for a case.
    read list = list_consents(pb::ListConsentsRequest) -> pb::ListConsentsResponse;
    /// Which agencies must acknowledge a withdrawal, and which have.
    read withdrawal_status = get_withdrawal_status(pb::GetWithdrawalStatusRequest) -> pb::GetWithdrawalStatusResponse;
    /// Asks the rules, recording nothing, whether a disclosure may happen.
    read check_disclosure = check_disclosure(pb::CheckDisclosureRequest) -> pb::CheckDisclosureResponse;
}

service! {
    /// `waymark.v1.ReferralService`: ask another agency for a service, and
    /// answer requests.
    Referrals, referrals, ReferralServiceClient<Channel>;
    /// Asks another agency for a service (a disclosure: needs a basis).
    write request = request_referral(pb::RequestReferralRequest) -> pb::RequestReferralResponse;
    /// Receiver: the request is taken in.
    write mark_received = mark_referral_received(pb::MarkReferralReceivedRequest) -> pb::MarkReferralReceivedResponse;
    /// Receiver: accepts.
    write accept = accept_referral(pb::AcceptReferralRequest) -> pb::AcceptReferralResponse;
    /// Receiver: declines.
    write reject = reject_referral(pb::RejectReferralRequest) -> pb::RejectReferralResponse;
    /// Receiver: service delivery started.
    write start = start_referral(pb::StartReferralRequest) -> pb::StartReferralResponse;
    /// Receiver: service delivered.
    write complete = complete_referral(pb::CompleteReferralRequest) -> pb::CompleteReferralResponse;
    /// Receiver: service could not be delivered.
    write fail = fail_referral(pb::FailReferralRequest) -> pb::FailReferralResponse;
    /// Requester: withdraws the request.
    write cancel = cancel_referral(pb::CancelReferralRequest) -> pb::CancelReferralResponse;
    /// Referrals of a case (or all) as this agency knows them.
    read list = list_referrals(pb::ListReferralsRequest) -> pb::ListReferralsResponse;
}

service! {
    /// `waymark.v1.HandoverService`: two-phase handover of custody.
    Handovers, handovers, HandoverServiceClient<Channel>;
    /// Custodian: offers custody to another agency.
    write offer = offer_handover(pb::OfferHandoverRequest) -> pb::OfferHandoverResponse;
    /// Offered agency: accepts and becomes custodian.
    write accept = accept_handover(pb::AcceptHandoverRequest) -> pb::AcceptHandoverResponse;
    /// Offered agency: declines.
    write reject = reject_handover(pb::RejectHandoverRequest) -> pb::RejectHandoverResponse;
    /// Custodian: withdraws a pending offer.
    write cancel = cancel_handover(pb::CancelHandoverRequest) -> pb::CancelHandoverResponse;
    /// Handovers of a case as this agency knows them.
    read list = list_handovers(pb::ListHandoversRequest) -> pb::ListHandoversResponse;
}

service! {
    /// `waymark.v1.JournalService`: entries, checkpoints, proofs, export.
    Journal, journal, JournalServiceClient<Channel>;
    /// Streams entries in seq order (retried until the stream opens).
    read entries = get_entries(pb::GetEntriesRequest) -> Streaming<pb::GetEntriesResponse>;
    /// The newest signed checkpoint with its cosignatures.
    read latest_checkpoint = get_latest_checkpoint(pb::GetLatestCheckpointRequest) -> pb::GetLatestCheckpointResponse;
    /// Signed checkpoints from a size on.
    read checkpoints = list_checkpoints(pb::ListCheckpointsRequest) -> pb::ListCheckpointsResponse;
    /// Proof that an entry is in a tree of a given size.
    read inclusion_proof = get_inclusion_proof(pb::GetInclusionProofRequest) -> pb::GetInclusionProofResponse;
    /// Proof that an earlier tree is a prefix of a later one.
    read consistency_proof = get_consistency_proof(pb::GetConsistencyProofRequest) -> pb::GetConsistencyProofResponse;
    /// The journal in the export file format, in chunks.
    read export = export_journal(pb::ExportJournalRequest) -> Streaming<pb::ExportJournalResponse>;
}

service! {
    /// `waymark.v1.InboxService`. To follow the inbox across restarts use
    /// [`InboxFollower`](crate::InboxFollower), which keeps the cursor.
    Inbox, inbox, InboxServiceClient<Channel>;
    /// Streams inbox items after a cursor, then live items.
    read subscribe = subscribe(pb::SubscribeRequest) -> Streaming<pb::SubscribeResponse>;
}

service! {
    /// `waymark.police.v1.PoliceService` (police agencies only).
    Police, police, police::v1::police_service_client::PoliceServiceClient<Channel>;
    /// Records an identification signal.
    write record_signal = record_signal(police::v1::RecordSignalRequest) -> police::v1::RecordSignalResponse;
    /// Records the reasonable-grounds decision.
    write decide_reasonable_grounds = decide_reasonable_grounds(police::v1::DecideReasonableGroundsRequest) -> police::v1::DecideReasonableGroundsResponse;
    /// Records conclusive identification.
    write conclude_identification = conclude_identification(police::v1::ConcludeIdentificationRequest) -> police::v1::ConcludeIdentificationResponse;
    /// Records cooperation and proceedings status.
    write record_proceedings_status = record_proceedings_status(police::v1::RecordProceedingsStatusRequest) -> police::v1::RecordProceedingsStatusResponse;
}

service! {
    /// `waymark.shelter.v1.ShelterService` (shelters only).
    Shelter, shelter, shelter::v1::shelter_service_client::ShelterServiceClient<Channel>;
    /// Records the shelter's capacity.
    write update_capacity = update_capacity(shelter::v1::UpdateCapacityRequest) -> shelter::v1::UpdateCapacityResponse;
    /// The shelter's capacity.
    read capacity = get_capacity(shelter::v1::GetCapacityRequest) -> shelter::v1::GetCapacityResponse;
    /// Admits a person.
    write admit_person = admit_person(shelter::v1::AdmitPersonRequest) -> shelter::v1::AdmitPersonResponse;
    /// Discharges a person.
    write discharge_person = discharge_person(shelter::v1::DischargePersonRequest) -> shelter::v1::DischargePersonResponse;
    /// Records a service delivered.
    write record_service_delivered = record_service_delivered(shelter::v1::RecordServiceDeliveredRequest) -> shelter::v1::RecordServiceDeliveredResponse;
    /// Records an agreed safety plan.
    write agree_safety_plan = agree_safety_plan(shelter::v1::AgreeSafetyPlanRequest) -> shelter::v1::AgreeSafetyPlanResponse;
    /// Starts the recovery and reflection period.
    write start_reflection_period = start_reflection_period(shelter::v1::StartReflectionPeriodRequest) -> shelter::v1::StartReflectionPeriodResponse;
}

service! {
    /// `waymark.ngo.v1.NgoService` (NGOs only).
    Ngo, ngo, ngo::v1::ngo_service_client::NgoServiceClient<Channel>;
    /// Records an outreach contact.
    write record_outreach_contact = record_outreach_contact(ngo::v1::RecordOutreachContactRequest) -> ngo::v1::RecordOutreachContactResponse;
    /// Records a hotline call.
    write record_hotline_intake = record_hotline_intake(ngo::v1::RecordHotlineIntakeRequest) -> ngo::v1::RecordHotlineIntakeResponse;
    /// Records an assistance service delivered.
    write record_assistance = record_assistance(ngo::v1::RecordAssistanceRequest) -> ngo::v1::RecordAssistanceResponse;
    /// Records a monitoring contact.
    write record_monitoring_contact = record_monitoring_contact(ngo::v1::RecordMonitoringContactRequest) -> ngo::v1::RecordMonitoringContactResponse;
}

service! {
    /// `waymark.returndesk.v1.ReturnDeskService` (IOM return desks only).
    ReturnDesk, returndesk, returndesk::v1::return_desk_service_client::ReturnDeskServiceClient<Channel>;
    /// Records a request for voluntary return.
    write request_return = request_return(returndesk::v1::RequestReturnRequest) -> returndesk::v1::RequestReturnResponse;
    /// Records the return risk assessment.
    write assess_return_risk = assess_return_risk(returndesk::v1::AssessReturnRiskRequest) -> returndesk::v1::AssessReturnRiskResponse;
    /// Records travel documents issued.
    write issue_travel_documents = issue_travel_documents(returndesk::v1::IssueTravelDocumentsRequest) -> returndesk::v1::IssueTravelDocumentsResponse;
    /// Schedules the return (treaty guards apply).
    write schedule_return = schedule_return(returndesk::v1::ScheduleReturnRequest) -> returndesk::v1::ScheduleReturnResponse;
    /// Records the departure.
    write record_departure = record_departure(returndesk::v1::RecordDepartureRequest) -> returndesk::v1::RecordDepartureResponse;
    /// Records reception by the origin-country partner.
    write confirm_reception = confirm_reception(returndesk::v1::ConfirmReceptionRequest) -> returndesk::v1::ConfirmReceptionResponse;
}

service! {
    /// `waymark.labour.v1.LabourService` (ministries of labour only).
    Labour, labour, labour::v1::labour_service_client::LabourServiceClient<Channel>;
    /// Records an agreed reintegration plan.
    write agree_reintegration_plan = agree_reintegration_plan(labour::v1::AgreeReintegrationPlanRequest) -> labour::v1::AgreeReintegrationPlanResponse;
    /// Records a reintegration measure.
    write record_reintegration_measure = record_reintegration_measure(labour::v1::RecordReintegrationMeasureRequest) -> labour::v1::RecordReintegrationMeasureResponse;
    /// Schedules monitoring.
    write schedule_monitoring = schedule_monitoring(labour::v1::ScheduleMonitoringRequest) -> labour::v1::ScheduleMonitoringResponse;
    /// Records a monitoring visit.
    write record_monitoring_visit = record_monitoring_visit(labour::v1::RecordMonitoringVisitRequest) -> labour::v1::RecordMonitoringVisitResponse;
    /// Monitoring that is overdue.
    read overdue_monitoring = list_overdue_monitoring(labour::v1::ListOverdueMonitoringRequest) -> labour::v1::ListOverdueMonitoringResponse;
}
