"""Every event contract round-trips through both CloudEvents content modes, and knows its own
type and topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from libs.common import events, topics
from libs.common.events import CONTRACTS, PUBLIC_CONTRACTS, Contract, InvalidEvent, decode_kafka, new_event
from services.trigger.domain.cohorts import RELATIONSHIP_DUE
from services.trigger.handlers.common import RelationshipDue

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ID = uuid.UUID("00000000-0000-4000-8000-000000000001")

SAMPLES: dict[str, Contract] = {
    events.PURCHASE_COMPLETED: events.PurchaseCompleted(
        order_id="9007199254740993",
        customer_id="c1",
        email="jane@example.com",
        amount=Decimal("12.50"),
        currency="DKK",
        locale="da-DK",
        occurred_at=NOW,
    ),
    events.TICKET_CLOSED: events.TicketClosed(ticket_id="T-1", customer_id="c1", email="jane@example.com"),
    events.ORDER_CANCELLED: events.OrderCancelled(order_id="1", customer_id="c1", reason="refunded"),
    events.CUSTOMER_UPSERTED: events.CustomerUpserted(
        customer_id="c1", email="jane@example.com", account_id="acct-9", time_zone="Europe/Copenhagen"
    ),
    events.CUSTOMER_UNSUBSCRIBED: events.CustomerUnsubscribed(email="jane@example.com", reason="hard_bounce"),
    events.CUSTOMER_RESUBSCRIBED: events.CustomerResubscribed(customer_id="c1"),
    events.SURVEY_CANCELLED: events.SurveyCancelled(invitation_id=ID, customer_id="c1", reason="cancelled"),
    events.SURVEY_REQUESTED: events.SurveyRequested(
        invitation_id=ID,
        customer_id="c1",
        email="jane@example.com",
        touchpoint="webshop-purchase",
        trigger_event_id="e1",
        trigger_event_type=events.PURCHASE_COMPLETED,
        send_at=NOW,
    ),
    events.SURVEY_SENT: events.SurveySent(
        invitation_id=ID, customer_id="c1", touchpoint="support-ticket", sent_at=NOW
    ),
    events.SURVEY_RESPONDED: events.SurveyResponded(
        response_id=ID,
        invitation_id=ID,
        customer_id="c1",
        email="jane@example.com",
        touchpoint="webshop-purchase",
        score=3,
        comment="slow delivery",
        responded_at=NOW,
    ),
    events.SURVEY_RESPONSE_UPDATED: events.SurveyResponseUpdated(
        response_id=ID,
        invitation_id=ID,
        customer_id="c1",
        touchpoint="webshop-purchase",
        revision=2,
        score=4,
        comment="slow delivery, and nobody answered the phone",
        recommended=False,
        csat=2,
        effort=6,
        responded_at=NOW,
        updated_at=NOW,
    ),
    **{
        step.event_type: step(invitation_id=ID, customer_id="c1", touchpoint="webshop-purchase", at=NOW)
        for step in (
            events.SurveyOpened,
            events.SurveyClicked,
            events.SurveyReminded,
            events.SurveyBounced,
            events.SurveyUnsubscribed,
            events.SurveyExpired,
        )
    },
    events.NPS_UPDATED: events.NpsUpdated(
        touchpoint="webshop-purchase",
        promoters=1,
        passives=0,
        detractors=1,
        responses=2,
        nps=0.0,
        as_of=NOW,
        spend=[events.CellSpend(currency="DKK", promoters=10_000, passives=0, detractors=25_050)],
    ),
    events.FOLLOWUP_OPENED: events.FollowupOpened(
        case_id=ID,
        response_id=ID,
        invitation_id=ID,
        customer_id="c1",
        touchpoint="webshop-purchase",
        score=3,
        owner_email="cx@acme.example",
        opened_at=NOW,
        due_at=NOW,
    ),
    events.FOLLOWUP_UPDATED: events.FollowupUpdated(
        case_id=ID, status="contacted", breached=False, updated_at=NOW
    ),
    events.TENANT_CREATED: events.TenantCreated(tenant_id=ID, name="acme", created_at=NOW),
    events.TENANT_UPDATED: events.TenantUpdated(
        tenant_id=ID, name="acme", display_name="Acme Inc.", owner_email=None, updated_at=NOW
    ),
    events.TENANT_RETENTION_SET: events.TenantRetentionSet(
        tenant_id=ID, comments_months=24, invitations_months=None, updated_at=NOW
    ),
    events.SURVEY_FAILED: events.SurveyFailed(
        invitation_id=ID,
        customer_id="c1",
        touchpoint="webshop-purchase",
        at=NOW,
        reason="expired",
        detail="expired before it could be sent",
    ),
    events.SUPPRESSION_LIFTED: events.SuppressionLifted(customer_id="c1", email="jane@example.com", at=NOW),
    events.PURCHASE_RECORDED: events.PurchaseRecorded(
        customer_id="c1",
        order_id="9007199254740993",
        amount=events.Money(amount_minor=1250, currency="DKK"),
        occurred_at=NOW,
    ),
    events.APIKEY_CREATED: events.ApiKeyCreated(
        key_id="0123456789abcdef", tenant_id=ID, key_hash="a" * 64, created_at=NOW
    ),
    events.APIKEY_REVOKED: events.ApiKeyRevoked(key_id="0123456789abcdef", tenant_id=ID, revoked_at=NOW),
    events.FOLLOWUP_RECOVERY_DUE: events.FollowupRecoveryDue(
        case_id=ID,
        response_id=ID,
        customer_id="c1",
        email="jane@example.com",
        touchpoint="webshop",
        score=3,
        resolved_at=NOW,
        root_cause="Delivery",
        due_at=NOW,
    ),
    events.SESSION_STARTED: events.SessionStarted(
        session_id="0123456789abcdef",
        tenant_id=ID,
        user_id=ID,
        role="agent",
        name="Mette Hansen",
        token_hash="a" * 64,
        started_at=NOW,
        expires_at=NOW,
    ),
    events.SESSION_ENDED: events.SessionEnded(session_id="0123456789abcdef", tenant_id=ID, ended_at=NOW),
    events.CUSTOMER_ERASED: events.CustomerErased(customer_id="c1", requested_at=NOW),
    events.ERASURE_REQUESTED: events.ErasureRequested(erasure_id=ID, customer_id="c1", requested_at=NOW),
    events.ERASURE_COMPLETED: events.ErasureCompleted(
        erasure_id=ID, service="survey", counts={"invitations": 2, "responses": 1}, completed_at=NOW
    ),
}


def test_every_contract_has_a_sample() -> None:
    assert set(SAMPLES) == set(CONTRACTS)


@pytest.mark.parametrize("event_type", sorted(CONTRACTS))
def test_structured_mode_round_trip(event_type: str) -> None:
    event = new_event(event_type, tenant_id=str(ID), data=SAMPLES[event_type], subject="c1", source="/tests")
    decoded = decode_kafka([], event.envelope.to_json())
    assert decoded.type == event_type
    assert decoded.data == SAMPLES[event_type]
    assert decoded.envelope == event.envelope


@pytest.mark.parametrize("event_type", sorted(CONTRACTS))
def test_binary_mode_round_trip(event_type: str) -> None:
    event = new_event(event_type, tenant_id=str(ID), data=SAMPLES[event_type], subject="c1", source="/tests")
    envelope = json.loads(event.envelope.to_json())
    data = envelope.pop("data")
    headers = [(f"ce_{name}", str(value).encode()) for name, value in envelope.items()]
    decoded = decode_kafka(headers, json.dumps(data).encode())
    assert decoded.data == SAMPLES[event_type]


def test_64_bit_order_ids_are_kept_exactly() -> None:
    payload = (
        b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"t",'
        b'"data":{"order_id":"9007199254740993","customer_id":"c"}}'
    )
    decoded = decode_kafka([], payload)
    assert isinstance(decoded.data, events.PurchaseCompleted)
    assert decoded.data.order_id == "9007199254740993"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (
            b'{"specversion":"1.0","id":"x","source":"/s","type":"nope.v1","tenantid":"t","data":{}}',
            "unknown event",
        ),
        (
            b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"t",'
            b'"data":{"order_id":"1"}}',
            "data.customer_id",
        ),
        (
            b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"t",'
            b'"data":{"order_id":"1","customer_id":"c","email":"nope"}}',
            "data.email",
        ),
        (
            b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"t",'
            b'"data":{"order_id":"1","customer_id":"c","discount":"all"}}',
            "data.discount",
        ),
        (b'{"id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"t","data":{}}', "specversion"),
    ],
)
def test_bad_events_are_refused_with_the_field_named(payload: bytes, problem: str) -> None:
    with pytest.raises(InvalidEvent) as error:
        decode_kafka([], payload)
    assert problem in error.value.reason


def test_a_tombstone_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="no value"):
        decode_kafka([], None)


def test_an_unsubscribe_names_the_customer_or_the_address() -> None:
    with pytest.raises(ValueError, match="customer_id or email"):
        events.CustomerUnsubscribed(reason="complaint")


def test_a_nul_character_anywhere_in_an_event_is_refused_naming_where() -> None:
    raw = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/shop",
        "type": events.PURCHASE_COMPLETED,
        "tenantid": str(ID),
        "data": {"order_id": "1", "customer_id": "c1", "name": "Jane\u0000Doe"},
    }
    with pytest.raises(events.InvalidEvent) as refused:
        events.validate(json.loads(json.dumps(raw).replace("\\\\u0000", "\\u0000")))
    assert refused.value.reason == "data.name: must not contain the NUL character (\\u0000)"
    with pytest.raises(events.InvalidEvent) as in_a_key:
        events.validate({**raw, "data": {"order_id": "1", "customer_id": "c1", "x\x00": 1}})
    assert in_a_key.value.reason.startswith("data.<key>: must not contain")


def test_every_contract_knows_its_one_type_and_its_topic() -> None:
    assert len({contract.event_type for contract in PUBLIC_CONTRACTS}) == len(PUBLIC_CONTRACTS)
    for contract in PUBLIC_CONTRACTS:
        assert contract.is_concrete()
        assert CONTRACTS[contract.event_type] == (contract, contract.topic)
        assert contract.topic in topics.ALL_TOPICS
    assert events.PurchaseCompleted.event_type == events.PURCHASE_COMPLETED == "purchase.completed.v1"
    assert events.PurchaseCompleted.topic == topics.PURCHASES
    assert events.SurveyOpened.event_type == events.SURVEY_OPENED == "survey.opened.v1"
    assert events.SurveyExpired.event_type == events.SURVEY_EXPIRED == "survey.expired.v1"
    assert events.NpsUpdated.topic == topics.SCORES


def test_a_contract_builds_its_own_event() -> None:
    sample = SAMPLES[events.SURVEY_BOUNCED]
    event = sample.event(tenant_id=ID, subject="c1", source="/nps/survey", event_id="e1", time=NOW)
    assert event.type == events.SURVEY_BOUNCED
    assert event.envelope.source == "/nps/survey"
    assert event.tenant_id == str(ID)
    assert (
        event.envelope
        == new_event(
            events.SURVEY_BOUNCED,
            tenant_id=str(ID),
            data=sample,
            subject="c1",
            source="/nps/survey",
            event_id="e1",
            time=NOW,
        ).envelope
    )


def test_the_shared_step_base_is_no_event_type_but_new_event_reads_it_as_the_step_named() -> None:
    step = events.SurveyStep(invitation_id=ID, customer_id="c1", touchpoint="webshop-purchase", at=NOW)
    assert not events.SurveyStep.is_concrete()
    with pytest.raises(TypeError, match="not one event type"):
        step.event(tenant_id=ID, subject="c1", source="/tests")
    event = new_event(events.SURVEY_CLICKED, tenant_id=str(ID), data=step, subject="c1", source="/tests")
    assert type(event.data) is events.SurveyClicked
    with pytest.raises(TypeError, match="carries"):
        new_event(events.SURVEY_SENT, tenant_id=str(ID), data=step, subject="c1", source="/tests")


def test_the_relationship_event_is_the_triggers_own_and_not_a_public_contract() -> None:
    assert RELATIONSHIP_DUE not in CONTRACTS
    assert RelationshipDue not in PUBLIC_CONTRACTS
    due = RelationshipDue(
        touchpoint="relationship-b2b", period="2026-11", account_id="acme", customer_id="c1"
    )
    event = due.event(tenant_id=ID, subject="c1", source="/nps/trigger")
    assert event.type == RELATIONSHIP_DUE
    # Producers cannot send it, whichever way it comes in.
    with pytest.raises(InvalidEvent, match="unknown event type"):
        decode_kafka([], event.envelope.to_json())


def test_the_tenant_is_typed_once_the_envelope_is_taken_in() -> None:
    event = decode_kafka(
        [], SAMPLES[events.SURVEY_SENT].event(tenant_id=ID, subject="c1", source="/s").envelope.to_json()
    )
    assert event.tenant == ID
    not_a_tenant = decode_kafka(
        [],
        b'{"specversion":"1.0","id":"x","source":"/s","type":"purchase.completed.v1","tenantid":"acme",'
        b'"data":{"order_id":"1","customer_id":"c"}}',
    )
    assert not_a_tenant.tenant_id == "acme"
    with pytest.raises(InvalidEvent) as refused:
        _ = not_a_tenant.tenant
    assert refused.value.reason == "tenantid: 'acme' is not a tenant id"


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("binary", [False, True], ids=["structured", "binary"])
def test_the_trace_context_round_trips_in_both_modes(binary: bool) -> None:
    event = new_event(
        events.SURVEY_SENT, tenant_id=str(ID), data=SAMPLES[events.SURVEY_SENT], subject="c1", source="/tests"
    )
    traced = event.envelope.model_copy(update={"traceparent": TRACEPARENT, "tracestate": "shop=1,vendor=x"})
    if binary:
        envelope = json.loads(traced.to_json())
        data = envelope.pop("data")
        headers = [(f"ce_{name}", str(value).encode()) for name, value in envelope.items()]
        decoded = decode_kafka(headers, json.dumps(data).encode())
    else:
        decoded = decode_kafka([], traced.to_json())
    assert (decoded.envelope.traceparent, decoded.envelope.tracestate) == (TRACEPARENT, "shop=1,vendor=x")
    assert decoded.envelope == traced


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a trace context",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # the all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        12345,
        "00-" + "a" * 500,
    ],
)
def test_a_malformed_traceparent_is_dropped_and_the_event_still_accepted(traceparent: object) -> None:
    event = new_event(
        events.SURVEY_SENT, tenant_id=str(ID), data=SAMPLES[events.SURVEY_SENT], subject="c1", source="/tests"
    )
    raw = json.loads(event.envelope.to_json())
    raw["traceparent"], raw["tracestate"] = traceparent, ["not", "text"]
    decoded = decode_kafka([], json.dumps(raw).encode())
    assert decoded.data == SAMPLES[events.SURVEY_SENT]
    assert (decoded.envelope.traceparent, decoded.envelope.tracestate) == (None, None)
