"""A Python back-office client of a Waymark agency, generated from proto/.

Proves the gRPC API works outside Rust: generates Python stubs from the
repository's .proto files with grpcio-tools, then, against a running
federation, opens a case at the police, records the person's consent,
forwards it to a shelter and refers the case to that shelter. Prints one JSON
object with the ids, which the Rust test (tests/tests/python_client.rs) checks
at the shelter.

Usage: client.py PROTO_DIR OUT_DIR POLICE_ADDR SHELTER_ID
"""

import json
import os
import sys
import time
import uuid

import grpc
import grpc_tools
from grpc_tools import protoc


def generate(proto_dir: str, out_dir: str) -> None:
    protos = []
    for root, _dirs, files in os.walk(proto_dir):
        protos += [os.path.join(root, f) for f in files if f.endswith(".proto")]
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(
        ["grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *sorted(protos)]
    )
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")


def main() -> None:
    proto_dir, out_dir, police_addr, shelter_id = sys.argv[1:5]
    generate(proto_dir, out_dir)
    sys.path.insert(0, out_dir)
    from waymark.v1 import case_service_pb2 as case_pb
    from waymark.v1 import case_service_pb2_grpc as case_grpc
    from waymark.v1 import consent_pb2, consent_service_pb2 as consent_svc
    from waymark.v1 import consent_service_pb2_grpc as consent_grpc
    from waymark.v1 import referral_pb2, referral_service_pb2 as referral_svc
    from waymark.v1 import referral_service_pb2_grpc as referral_grpc
    from waymark.v1 import case_pb2, disclosure_pb2, requests_pb2, vocabulary_pb2 as voc
    from google.protobuf import timestamp_pb2

    channel = grpc.insecure_channel(police_addr)
    cases = case_grpc.CaseServiceStub(channel)
    consents = consent_grpc.ConsentServiceStub(channel)
    referrals = referral_grpc.ReferralServiceStub(channel)

    # A malformed request is refused with a precise status.
    try:
        cases.OpenCase(case_pb.OpenCaseRequest(channel=case_pb2.IDENTIFICATION_CHANNEL_POLICE))
        sys.exit("OpenCase without an idempotency key was accepted")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
            sys.exit(f"expected INVALID_ARGUMENT, got {e.code()}: {e.details()}")
        bad_request = e.details()

    opened = cases.OpenCase(case_pb.OpenCaseRequest(
        idempotency_key=str(uuid.uuid4()),
        channel=case_pb2.IDENTIFICATION_CHANNEL_POLICE,
        forms=[case_pb2.EXPLOITATION_FORM_LABOUR],
    ))
    case_id = opened.case_id

    scope = consent_pb2.ConsentScope(
        recipient_kinds=[voc.AGENCY_KIND_SHELTER],
        purposes=[voc.PURPOSE_ACCOMMODATION, voc.PURPOSE_ASSISTANCE],
        categories=[voc.DATA_CATEGORY_CASE_CORE, voc.DATA_CATEGORY_ASSISTANCE],
    )
    granted = consents.GrantConsent(consent_svc.GrantConsentRequest(
        idempotency_key=str(uuid.uuid4()),
        case_id=case_id,
        consent=consent_pb2.ConsentGranted(
            scope=scope,
            valid_until=timestamp_pb2.Timestamp(seconds=int(time.time()) + 90 * 86400),
            method=consent_pb2.CONSENT_METHOD_WRITTEN,
            obtained_by_role="social worker",
            language="en",
        ),
    ))
    shelter = requests_pb2.SendTo(recipient_id=shelter_id, recipient_kind=voc.AGENCY_KIND_SHELTER)
    cases.ForwardEvent(case_pb.ForwardEventRequest(
        idempotency_key=str(uuid.uuid4()),
        case_id=case_id,
        event_id=granted.consent_id,
        send_to=shelter,
    ))
    to_shelter = requests_pb2.SendTo(
        recipient_id=shelter_id,
        recipient_kind=voc.AGENCY_KIND_SHELTER,
        purpose=voc.PURPOSE_ACCOMMODATION,
        basis=disclosure_pb2.DisclosureBasis(consent_id=granted.consent_id),
    )
    referred = referrals.RequestReferral(referral_svc.RequestReferralRequest(
        idempotency_key=str(uuid.uuid4()),
        case_id=case_id,
        service=referral_pb2.SERVICE_TYPE_ACCOMMODATION,
        send_to=to_shelter,
    ))
    print(json.dumps({
        "case_id": case_id,
        "consent_id": granted.consent_id,
        "referral_id": referred.referral_id,
        "bad_request": bad_request,
    }))


if __name__ == "__main__":
    main()
