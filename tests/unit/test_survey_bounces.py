"""Bounce and complaint reports, as mail servers and providers publish them, become facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.survey.adapters.bounces import (
    MAX_DSN_BYTES,
    PROVIDERS,
    BounceKind,
    BounceReport,
    InvalidBounce,
    parse_dsn,
    parse_provider_event,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
OUR_ID = "6f1c2a9e-8d3b-4c71-9a55-0d2e7b4f1c3a@survey.example.com"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def facts(reports: list[BounceReport]) -> list[tuple[str, BounceKind, str | None, str | None]]:
    return [(r.recipient, r.kind, r.status, r.message_id) for r in reports]


# --- RFC 3464 / RFC 5965 / Postfix ---------------------------------------------------------------


def test_rfc3464_simple_dsn_failed_with_a_transient_status_is_soft() -> None:
    # Sendmail gave up after 5 days, but the status says 4.0.0: the address itself may be fine.
    reports = parse_dsn(fixture_bytes("rfc3464_example1_simple.eml"))
    assert facts(reports) == [("louisl@larry.slip.umd.edu", BounceKind.SOFT, "4.0.0", None)]
    assert reports[0].diagnostic == "426 connection timed out"


def test_rfc3464_multi_recipient_dsn_reports_each_failed_or_delayed_recipient() -> None:
    reports = parse_dsn(fixture_bytes("rfc3464_example2_multi_recipient.eml"))
    assert facts(reports) == [
        ("arathib@vnet.ibm.com", BounceKind.HARD, "5.0.0", None),
        ("johnh@hpnjld.njd.hp.com", BounceKind.SOFT, "4.0.0", None),
        ("wsnell@sdcc13.ucsd.edu", BounceKind.HARD, "5.0.0", None),
    ]
    # The folded Diagnostic-Code reads as one line.
    assert reports[0].diagnostic == "550 'arathib@vnet.IBM.COM' is not a registered gateway user"


def test_rfc3464_gateway_dsn_keeps_a_foreign_address_as_reported() -> None:
    reports = parse_dsn(fixture_bytes("rfc3464_example3_gateway.eml"))
    assert facts(reports) == [("nair_s", BounceKind.HARD, "5.0.0", None)]


def test_rfc3464_delayed_dsn_is_soft() -> None:
    reports = parse_dsn(fixture_bytes("rfc3464_example4_delayed.eml"))
    assert facts(reports) == [("thomas@de-montfort.ac.uk", BounceKind.SOFT, "4.0.0", None)]


def test_postfix_over_quota_bounce_is_hard() -> None:
    reports = parse_dsn(fixture_bytes("postfix_bbox_over_quota.eml"))
    assert facts(reports) == [("recipient@domain.com", BounceKind.HARD, "5.0.0", None)]
    assert reports[0].diagnostic == "552 <recipient@domain.com> rejected: over quota"


def test_rfc5965_abuse_report_is_a_complaint_for_the_original_recipient() -> None:
    # In this copy a blank line ends the returned headers after Received, so the spam's
    # Message-ID sits in the body and is rightly not read as a header.
    reports = parse_dsn(fixture_bytes("rfc5965_example_abuse.eml"))
    assert facts(reports) == [("user@example.com", BounceKind.COMPLAINT, None, None)]
    assert reports[0].diagnostic == "feedback-type: abuse"


def test_rfc5965_abuse_report_carries_the_returned_message_id() -> None:
    raw = fixture_bytes("rfc5965_example_abuse.eml").replace(b"-0400\n\nTo:", b"-0400\nTo:")
    reports = parse_dsn(raw)
    assert facts(reports) == [
        ("user@example.com", BounceKind.COMPLAINT, None, "8787KJKJ3K4J3K4J3K4J3.mail@example.net")
    ]


def test_our_message_id_is_taken_from_the_returned_message() -> None:
    raw = fixture_bytes("rfc3464_example1_simple.eml").replace(
        b"[original message goes here]",
        f"Message-ID: <{OUR_ID}>\r\nSubject: How did we do?\r\n\r\nbody".encode(),
    )
    assert parse_dsn(raw)[0].message_id == OUR_ID


def test_our_message_id_is_taken_from_returned_headers_only() -> None:
    raw = fixture_bytes("postfix_bbox_over_quota.eml").replace(
        b"[original message goes here]", f"Message-ID:\n <{OUR_ID}>\nFrom: nps@example.com".encode()
    )
    assert parse_dsn(raw)[0].message_id == OUR_ID


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_a_successful_action_yields_nothing(action: str) -> None:
    raw = fixture_bytes("rfc3464_example1_simple.eml").replace(
        b"Action: failed\r\nStatus: 4.0.0", f"Action: {action}\r\nStatus: 2.0.0".encode()
    )
    assert parse_dsn(raw) == []


def test_only_failed_recipients_are_reported_from_a_mixed_dsn() -> None:
    raw = fixture_bytes("rfc3464_example2_multi_recipient.eml").replace(
        b"Action: delayed", b"Action: relayed"
    )
    assert [r.recipient for r in parse_dsn(raw)] == ["arathib@vnet.ibm.com", "wsnell@sdcc13.ucsd.edu"]


# --- providers -----------------------------------------------------------------------------------


def test_ses_permanent_bounce_uses_the_original_message_id_header() -> None:
    reports = parse_provider_event("ses", fixture_json("ses_bounce_with_dsn.json"))
    assert facts(reports) == [("jane@example.com", BounceKind.HARD, "5.1.1", "custom-message-ID")]
    assert reports[0].diagnostic == "smtp; 550 5.1.1 <jane@example.com>... User"


def test_ses_bounce_without_dsn_reports_every_recipient() -> None:
    reports = parse_provider_event("ses", fixture_json("ses_bounce_without_dsn.json"))
    assert facts(reports) == [
        ("jane@example.com", BounceKind.HARD, None, "custom-message-ID"),
        ("richard@example.com", BounceKind.HARD, None, "custom-message-ID"),
    ]


def test_ses_complaint() -> None:
    reports = parse_provider_event("ses", fixture_json("ses_complaint_with_feedback.json"))
    assert facts(reports) == [("richard@example.com", BounceKind.COMPLAINT, None, "custom-message-ID")]


def test_ses_inside_an_sns_envelope() -> None:
    envelope = {"Type": "Notification", "Message": fixture_bytes("ses_bounce_with_dsn.json").decode()}
    assert facts(parse_provider_event("ses", envelope)) == [
        ("jane@example.com", BounceKind.HARD, "5.1.1", "custom-message-ID")
    ]


def test_ses_transient_bounce_is_soft_and_without_headers_has_no_message_id() -> None:
    notification = fixture_json("ses_bounce_without_dsn.json")
    notification["bounce"]["bounceType"] = "Transient"
    del notification["mail"]["headers"]
    reports = parse_provider_event("ses", notification)
    assert {(r.kind, r.message_id) for r in reports} == {(BounceKind.SOFT, None)}


def test_sendgrid_bounce_dropped_bounced_address_and_spamreport_only() -> None:
    reports = parse_provider_event("sendgrid", fixture_json("sendgrid_events.json"))
    mid = "14c5d75ce93.dfd.64b469@ismtpd-555"
    assert facts(reports) == [
        ("example@test.com", BounceKind.HARD, "5.0.0", mid),
        ("example@test.com", BounceKind.HARD, "5.0.0", mid),
        ("example@test.com", BounceKind.COMPLAINT, None, mid),
    ]


def test_sendgrid_blocked_bounce_is_soft() -> None:
    events = fixture_json("sendgrid_events.json")
    bounce = next(e for e in events if e["event"] == "bounce")
    bounce["type"] = "blocked"
    assert [r.kind for r in parse_provider_event("sendgrid", [bounce])] == [BounceKind.SOFT]


def test_mailgun_permanent_failure_is_hard() -> None:
    reports = parse_provider_event("mailgun", fixture_json("mailgun_failed_permanent.json"))
    assert facts(reports) == [
        ("alice@example.com", BounceKind.HARD, None, "20230608171839.8bf4bf72785b8dcd@m.nokori.com")
    ]
    assert reports[0].diagnostic == "Not delivering to previously bounced address"


def test_mailgun_temporary_failure_is_soft() -> None:
    payload = fixture_json("mailgun_failed_permanent.json")
    payload["event-data"]["severity"] = "temporary"
    assert [r.kind for r in parse_provider_event("mailgun", payload)] == [BounceKind.SOFT]


def test_mailgun_complaint() -> None:
    reports = parse_provider_event("mailgun", fixture_json("mailgun_complained.json"))
    assert facts(reports) == [
        (
            "alice@example.com",
            BounceKind.COMPLAINT,
            None,
            "20110215055645.25246.63817@sandbox80e93ea8b9e2434f982ab4f01859633c.mailgun.org",
        )
    ]


def test_postmark_hard_bounce_ignores_postmarks_own_message_id() -> None:
    reports = parse_provider_event("postmark", fixture_json("postmark_bounce.json"))
    assert facts(reports) == [("john@example.com", BounceKind.HARD, None, None)]
    assert reports[0].diagnostic == "Test bounce details"


def test_postmark_metadata_holding_our_message_id_is_used() -> None:
    payload = fixture_json("postmark_bounce.json")
    payload["Metadata"]["message_id"] = f"<{OUR_ID}>"
    assert parse_provider_event("postmark", payload)[0].message_id == OUR_ID


@pytest.mark.parametrize(
    ("record_type", "bounce_type", "kind"),
    [
        ("Bounce", "SoftBounce", BounceKind.SOFT),
        ("Bounce", "Transient", BounceKind.SOFT),
        ("SpamComplaint", "SpamComplaint", BounceKind.COMPLAINT),
    ],
)
def test_postmark_kinds(record_type: str, bounce_type: str, kind: BounceKind) -> None:
    payload = fixture_json("postmark_bounce.json") | {"RecordType": record_type, "Type": bounce_type}
    assert [r.kind for r in parse_provider_event("postmark", payload)] == [kind]


def test_postmark_auto_responder_is_no_bounce() -> None:
    payload = fixture_json("postmark_bounce.json") | {"Type": "AutoResponder"}
    assert parse_provider_event("postmark", payload) == []


def test_generic_single_and_list() -> None:
    one = {"email": "Ada@Example.com", "type": "hard_bounce", "message_id": f"<{OUR_ID}>", "status": "5.1.1"}
    assert facts(parse_provider_event("generic", one)) == [
        ("Ada@Example.com", BounceKind.HARD, "5.1.1", OUR_ID)
    ]
    many = [one, {"email": "grace@example.org", "type": "complaint"}]
    assert [r.kind for r in parse_provider_event("generic", many)] == [BounceKind.HARD, BounceKind.COMPLAINT]


def test_every_provider_is_known() -> None:
    assert {"generic", "ses", "sendgrid", "mailgun", "postmark"} == PROVIDERS


# --- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "empty"),
        (b"hello, this is not an email at all", "not an email"),
        (
            b"From: a@example.com\r\nSubject: hi\r\nContent-Type: text/plain\r\n\r\nhello",
            "not multipart/report",
        ),
        (
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
            b"--x\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--x--\r\n",
            "no message/delivery-status part",
        ),
        (
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
            b"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n--x--\r\n",
            "names no recipient",
        ),
        (b"x" * (MAX_DSN_BYTES + 1), "too large"),
    ],
)
def test_hostile_emails_raise_invalid_bounce_naming_the_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidBounce, match=problem):
        parse_dsn(raw)


def test_not_bytes_is_invalid() -> None:
    with pytest.raises(InvalidBounce, match="expected bytes"):
        parse_dsn("From: a@example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("provider", "payload", "problem"),
    [
        ("smtp2go", {}, "unknown provider"),
        ("generic", {"email": "a@example.com", "type": "bounced"}, "type must be one of"),
        ("generic", {"type": "hard_bounce"}, "email must be a non-empty string"),
        ("generic", "hard_bounce", "expected a JSON object"),
        ("ses", [], "expected a JSON object"),
        ("ses", {"Type": "Notification", "Message": "{not json"}, "not JSON"),
        ("ses", {"Type": "SubscriptionConfirmation"}, "carries no bounce"),
        (
            "ses",
            {"notificationType": "Bounce", "bounce": {"bouncedRecipients": "x"}},
            "expected a JSON array",
        ),
        ("sendgrid", {"event": "bounce"}, "expected a JSON array"),
        ("sendgrid", [{"event": "bounce", "email": 7}], "email must be a non-empty string"),
        ("mailgun", {"event-data": None}, "expected a JSON object"),
        ("mailgun", {"event-data": {"event": "failed", "recipient": "a@b.c"}}, "severity"),
        ("postmark", {"RecordType": "Bounce", "Type": "HardBounce"}, "Email must be"),
    ],
)
def test_garbage_payload_shapes_raise_invalid_bounce(provider: str, payload: Any, problem: str) -> None:
    with pytest.raises(InvalidBounce, match=problem):
        parse_provider_event(provider, payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_list_or_invalid_bounce(raw: bytes) -> None:
    try:
        result = parse_dsn(raw)
    except InvalidBounce:
        return
    assert isinstance(result, list)


# Mutations of real reports reach deeper into the parser than random bytes do.
_REAL_EMAILS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_REAL_EMAILS),
    st.integers(min_value=0, max_value=4000),
    st.integers(min_value=0, max_value=200),
    st.binary(max_size=64),
)
def test_mangled_reports_give_a_list_or_invalid_bounce(
    raw: bytes, start: int, length: int, insert: bytes
) -> None:
    mangled = raw[:start] + insert + raw[start + length :]
    try:
        result = parse_dsn(mangled)
    except InvalidBounce:
        return
    assert all(isinstance(r, BounceReport) for r in result)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "event",
                    "type",
                    "email",
                    "event-data",
                    "severity",
                    "RecordType",
                    "Type",
                    "Email",
                    "notificationType",
                    "bounce",
                    "bouncedRecipients",
                    "emailAddress",
                    "mail",
                    "headers",
                    "message",
                    "Message",
                    "recipient",
                    "smtp-id",
                    "Metadata",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PROVIDERS)), _json)
def test_arbitrary_json_gives_a_list_or_invalid_bounce(provider: str, payload: Any) -> None:
    try:
        result = parse_provider_event(provider, payload)
    except InvalidBounce:
        return
    assert all(isinstance(r, BounceReport) for r in result)
