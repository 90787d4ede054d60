"""Bounce and complaint reports turned into facts: who failed, how badly, for which message.

Two doors lead here. A bounce mailbox receives RFC 3464 delivery status notifications (and RFC 5965
ARF complaint reports) as raw email; an email provider posts its own JSON event. Both end as
:class:`BounceReport` values, one per failed recipient, so the caller can find the invitation by
the ``Message-ID`` we gave it (``<{invitation uuid}@{domain}>``) and decide what to suppress.

Everything here is pure: bytes or decoded JSON in, facts out. Whatever the input, the only
exception that leaves is :class:`InvalidBounce`, naming the problem, so an endpoint can answer 4xx
without guessing.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from enum import StrEnum
from typing import Any

#: A bounce keeps at most the returned message; anything far larger is not a report we want to parse.
MAX_DSN_BYTES = 10 * 1024 * 1024
#: One provider request carries a batch of events; SendGrid sends up to a few thousand at once.
MAX_EVENTS = 10_000
#: The ``diagnostic`` kept on a report, for people reading it, not for machines.
MAX_DIAGNOSTIC_CHARS = 300

PROVIDERS: frozenset[str] = frozenset({"generic", "ses", "sendgrid", "mailgun", "postmark"})

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_WHITESPACE = re.compile(r"\s+")
_OUR_MESSAGE_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}@[^\s@<>]+$"
)
_POLICY = email.policy.default


class BounceKind(StrEnum):
    HARD = "hard_bounce"
    SOFT = "soft_bounce"
    COMPLAINT = "complaint"


@dataclass(frozen=True, slots=True)
class BounceReport:
    #: The failed address as reported (not lower-cased: matching is the caller's business).
    recipient: str
    kind: BounceKind
    #: Enhanced status code such as ``5.1.1``, when the report gives one.
    status: str | None
    #: Short human text (at most 300 characters).
    diagnostic: str | None
    #: ``Message-ID`` of our original message, without angle brackets, when the report carries it.
    message_id: str | None


_KIND_VALUES = frozenset(kind.value for kind in BounceKind)


class InvalidBounce(ValueError):
    """The input is not a bounce or complaint report this module can read; the message says why."""


# --------------------------------------------------------------------------------------------------
# RFC 3464 delivery status notifications and RFC 5965 feedback reports


def parse_dsn(raw: bytes) -> list[BounceReport]:
    """Facts from a bounce email as delivered to the bounce mailbox.

    A ``multipart/report`` with a ``message/delivery-status`` part (RFC 3464) gives one report per
    recipient whose ``Action`` is ``failed`` or ``delayed``; delivered, relayed and expanded
    recipients give nothing. A ``message/feedback-report`` part (RFC 5965, ARF) gives one
    complaint. The original ``Message-ID`` comes from the returned ``message/rfc822`` or
    ``text/rfc822-headers`` part.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidBounce(f"not an email: expected bytes, got {type(raw).__name__}")
    if len(raw) == 0:
        raise InvalidBounce("not an email: empty input")
    if len(raw) > MAX_DSN_BYTES:
        raise InvalidBounce(f"report too large: {len(raw)} bytes, at most {MAX_DSN_BYTES}")
    try:
        return _parse_report(bytes(raw))
    except InvalidBounce:
        raise
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError) as exc:
        # The stdlib parser is lenient, but header access on malformed input can still raise
        # from deep inside email._header_value_parser; to the caller it is one thing: unreadable.
        raise InvalidBounce(f"unreadable report: {type(exc).__name__}") from exc
    except RecursionError as exc:
        raise InvalidBounce("unreadable report: MIME parts nested too deeply") from exc


def _parse_report(raw: bytes) -> list[BounceReport]:
    message = email.message_from_bytes(raw, policy=_POLICY)
    if not message.keys():
        raise InvalidBounce("not an email: no header fields")
    parts = list(_walk(message))
    status_parts = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    feedback_parts = [p for p in parts if p.get_content_type() == "message/feedback-report"]
    original_id = _original_message_id(parts)
    if status_parts:
        return _delivery_status_reports(status_parts[0], original_id)
    if feedback_parts:
        return [_feedback_report(feedback_parts[0], parts, original_id)]
    if message.get_content_type() != "multipart/report":
        raise InvalidBounce(
            f"not a delivery status notification: content type is {message.get_content_type()}, "
            "not multipart/report"
        )
    raise InvalidBounce("not a delivery status notification: no message/delivery-status part")


def _walk(message: Message) -> Iterator[Message]:
    """Every part, depth first, without descending into returned messages.

    A returned ``message/rfc822`` may itself be a bounce (a bounce of a bounce); its parts must not
    be mistaken for this report's.
    """
    yield message
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        payload = message.get_payload()
        if isinstance(payload, list):
            for part in payload:
                if isinstance(part, Message):
                    yield from _walk(part)


def _delivery_status_reports(part: Message, original_id: str | None) -> list[BounceReport]:
    # The stdlib parses message/delivery-status into one Message per field block: the first holds
    # the per-message fields, each further one a recipient.
    blocks = part.get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise InvalidBounce("delivery status names no recipient: no per-recipient fields")
    reports: list[BounceReport] = []
    for block in blocks[1:]:
        if not isinstance(block, Message):
            continue
        report = _recipient_report(block, original_id)
        if report is not None:
            reports.append(report)
    return reports


def _recipient_report(block: Message, original_id: str | None) -> BounceReport | None:
    action = _field(block, "Action")
    action = action.split(None, 1)[0].lower() if action else ""
    if action not in ("failed", "delayed"):
        # delivered / relayed / expanded are successes; an unknown action is no fact to act on.
        return None
    recipient = _address_field(block, "Final-Recipient") or _address_field(block, "Original-Recipient")
    if recipient is None:
        return None
    status = _status(_field(block, "Status"))
    if action == "delayed" or (status is not None and status.startswith("4.")):
        kind = BounceKind.SOFT
    else:
        # A failure with no usable status is still final: the MTA has given up.
        kind = BounceKind.HARD
    diagnostic = _address_field(block, "Diagnostic-Code")
    return BounceReport(
        recipient=recipient,
        kind=kind,
        status=status,
        diagnostic=_short(diagnostic),
        message_id=original_id,
    )


def _feedback_report(part: Message, parts: list[Message], original_id: str | None) -> BounceReport:
    fields = part.get_payload(0) if part.is_multipart() else None
    if not isinstance(fields, Message):
        raise InvalidBounce("feedback report has no fields")
    recipient = _bare_address(_field(fields, "Original-Rcpt-To")) or _bare_address(
        _field(fields, "Removal-Recipient")
    )
    if recipient is None:
        # Many feedback loops redact Original-Rcpt-To; the returned message's To is the fallback.
        recipient = _original_to(parts)
    if recipient is None:
        raise InvalidBounce("feedback report names no recipient: no Original-Rcpt-To and no To header")
    feedback_type = _field(fields, "Feedback-Type")
    return BounceReport(
        recipient=recipient,
        kind=BounceKind.COMPLAINT,
        status=None,
        diagnostic=_short(f"feedback-type: {feedback_type}" if feedback_type else None),
        message_id=original_id,
    )


def _original_headers(parts: list[Message]) -> Message | None:
    for part in parts:
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload(0) if part.is_multipart() else None
            if isinstance(inner, Message):
                return inner
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return HeaderParser(policy=_POLICY).parsestr(text.decode("utf-8", "replace"))
    return None


def _original_message_id(parts: list[Message]) -> str | None:
    headers = _original_headers(parts)
    return None if headers is None else _message_id(_field(headers, "Message-ID"))


def _original_to(parts: list[Message]) -> str | None:
    headers = _original_headers(parts)
    if headers is None:
        return None
    to = _field(headers, "To")
    if to is None or "," in to:
        return None
    return _bare_address(to.rsplit("<", 1)[-1] if "<" in to else to)


def _field(message: Message, name: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    text = _WHITESPACE.sub(" ", str(value)).strip()
    return text or None


def _address_field(block: Message, name: str) -> str | None:
    """The value of a ``type; value`` field (``rfc822;ada@example.com``), without the type."""
    value = _field(block, name)
    if value is None:
        return None
    _, _, rest = value.partition(";")
    return _bare_address(rest if rest else value)


def _bare_address(value: str | None) -> str | None:
    if value is None:
        return None
    address = value.strip().strip("<>").strip()
    return address or None


def _status(value: str | None) -> str | None:
    if value is None:
        return None
    match = _STATUS.search(value)
    return None if match is None else ".".join(match.groups())


def _message_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().strip("<>").strip()
    if not text or len(text) > 998 or _WHITESPACE.search(text):
        return None
    return text


def _short(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    compact = _WHITESPACE.sub(" ", text).strip()
    if not compact:
        return None
    return compact if len(compact) <= MAX_DIAGNOSTIC_CHARS else compact[: MAX_DIAGNOSTIC_CHARS - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Provider webhooks


def parse_provider_event(provider: str, payload: Any) -> list[BounceReport]:
    """Facts from one provider webhook request body (already JSON-decoded).

    Events that are not bounces or complaints (deliveries, opens, clicks) give nothing.
    """
    parser = _PROVIDER_PARSERS.get(provider) if isinstance(provider, str) else None
    if parser is None:
        raise InvalidBounce(f"unknown provider {provider!r}: expected one of {sorted(PROVIDERS)}")
    try:
        return parser(payload)
    except InvalidBounce:
        raise
    except RecursionError as exc:
        raise InvalidBounce(f"{provider} payload nested too deeply") from exc


def _generic(payload: Any) -> list[BounceReport]:
    events = payload if isinstance(payload, list) else [payload]
    _check_batch("generic", events)
    reports = []
    for index, event in enumerate(events):
        where = f"generic event {index}"
        item = _object(event, where)
        kind_name = item.get("type")
        if not isinstance(kind_name, str) or kind_name not in _KIND_VALUES:
            raise InvalidBounce(f"{where}: type must be one of {sorted(_KIND_VALUES)}, got {kind_name!r}")
        kind = BounceKind(kind_name)
        status = _optional_str(item, "status", where)
        reports.append(
            BounceReport(
                recipient=_required_str(item, "email", where),
                kind=kind,
                status=_status(status),
                diagnostic=_short(_optional_str(item, "diagnostic", where)),
                message_id=_message_id(_optional_str(item, "message_id", where)),
            )
        )
    return reports


def _ses(payload: Any) -> list[BounceReport]:
    notification = _object(payload, "ses payload")
    if "Type" in notification and "notificationType" not in notification:
        # The SNS envelope: the SES notification travels as a JSON string in "Message".
        sns_type = notification.get("Type")
        if sns_type != "Notification":
            raise InvalidBounce(f"ses: SNS message of type {sns_type!r} carries no bounce")
        inner = notification.get("Message")
        if not isinstance(inner, str):
            raise InvalidBounce("ses: SNS envelope has no Message string")
        try:
            decoded = json.loads(inner)
        except (ValueError, RecursionError) as exc:
            raise InvalidBounce("ses: SNS Message is not JSON") from exc
        notification = _object(decoded, "ses notification")
    # Configuration-set event publishing names the field eventType.
    kind_name = notification.get("notificationType", notification.get("eventType"))
    if not isinstance(kind_name, str):
        raise InvalidBounce("ses: notification has no notificationType")
    mail = notification.get("mail")
    message_id = _ses_message_id(mail) if isinstance(mail, Mapping) else None
    if kind_name == "Bounce":
        bounce = _object(notification.get("bounce"), "ses bounce")
        bounce_type = bounce.get("bounceType")
        # Undetermined: SES could not tell; suppressing on a guess would lose a good address.
        kind = BounceKind.HARD if bounce_type == "Permanent" else BounceKind.SOFT
        recipients = _array(bounce.get("bouncedRecipients"), "ses bouncedRecipients")
        reports = []
        for index, recipient in enumerate(recipients):
            where = f"ses bouncedRecipients {index}"
            item = _object(recipient, where)
            reports.append(
                BounceReport(
                    recipient=_required_str(item, "emailAddress", where),
                    kind=kind,
                    status=_status(_optional_str(item, "status", where)),
                    diagnostic=_short(_optional_str(item, "diagnosticCode", where)),
                    message_id=message_id,
                )
            )
        return reports
    if kind_name == "Complaint":
        complaint = _object(notification.get("complaint"), "ses complaint")
        recipients = _array(complaint.get("complainedRecipients"), "ses complainedRecipients")
        feedback = complaint.get("complaintFeedbackType")
        diagnostic = f"feedback-type: {feedback}" if isinstance(feedback, str) else None
        return [
            BounceReport(
                recipient=_required_str(
                    _object(r, f"ses complainedRecipients {i}"), "emailAddress", "ses complaint"
                ),
                kind=BounceKind.COMPLAINT,
                status=None,
                diagnostic=_short(diagnostic),
                message_id=message_id,
            )
            for i, r in enumerate(recipients)
        ]
    return []


def _ses_message_id(mail: Mapping[str, Any]) -> str | None:
    # mail.messageId is SES's own id; ours is only in the original headers, when SES includes them.
    headers = mail.get("headers")
    if not isinstance(headers, list):
        return None
    for header in headers:
        if isinstance(header, Mapping) and str(header.get("name", "")).lower() == "message-id":
            return _message_id(header.get("value"))
    return None


def _sendgrid(payload: Any) -> list[BounceReport]:
    events = _array(payload, "sendgrid payload")
    _check_batch("sendgrid", events)
    reports = []
    for index, event in enumerate(events):
        where = f"sendgrid event {index}"
        item = _object(event, where)
        name = _required_str(item, "event", where)
        status = _status(_optional_str(item, "status", where))
        reason = _optional_str(item, "reason", where)
        kind: BounceKind | None = None
        if name == "bounce":
            bounce_type = item.get("type")
            if bounce_type == "blocked" or (bounce_type is None and status and status.startswith("4.")):
                kind = BounceKind.SOFT
            else:
                kind = BounceKind.HARD
        elif name == "dropped" and reason is not None and "bounced address" in reason.lower():
            kind = BounceKind.HARD
        elif name == "spamreport":
            kind = BounceKind.COMPLAINT
        if kind is None:
            continue
        reports.append(
            BounceReport(
                recipient=_required_str(item, "email", where),
                kind=kind,
                status=status,
                diagnostic=_short(reason),
                message_id=_message_id(_optional_str(item, "smtp-id", where)),
            )
        )
    return reports


def _mailgun(payload: Any) -> list[BounceReport]:
    body = _object(payload, "mailgun payload")
    event = _object(body.get("event-data"), "mailgun event-data")
    name = _required_str(event, "event", "mailgun event-data")
    if name == "failed":
        severity = event.get("severity")
        if severity == "permanent":
            kind = BounceKind.HARD
        elif severity == "temporary":
            kind = BounceKind.SOFT
        else:
            raise InvalidBounce(
                f"mailgun failed event: severity must be permanent or temporary, got {severity!r}"
            )
    elif name == "complained":
        kind = BounceKind.COMPLAINT
    else:
        return []
    delivery_status = event.get("delivery-status")
    status: str | None = None
    diagnostic: str | None = None
    if isinstance(delivery_status, Mapping):
        enhanced = delivery_status.get("enhanced-code")
        status = _status(enhanced) if isinstance(enhanced, str) else None
        for key in ("message", "description"):
            text = delivery_status.get(key)
            if isinstance(text, str) and text.strip():
                diagnostic = text
                break
    if diagnostic is None and isinstance(event.get("reason"), str):
        diagnostic = event["reason"]
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    message_id = _message_id(headers.get("message-id")) if isinstance(headers, Mapping) else None
    return [
        BounceReport(
            recipient=_required_str(event, "recipient", "mailgun event-data"),
            kind=kind,
            status=status,
            diagnostic=_short(diagnostic),
            message_id=message_id,
        )
    ]


_POSTMARK_HARD = frozenset({"HardBounce", "BadEmailAddress"})
_POSTMARK_SOFT = frozenset({"SoftBounce", "Transient", "DnsError"})
_POSTMARK_COMPLAINT = frozenset({"SpamComplaint", "SpamNotification"})


def _postmark(payload: Any) -> list[BounceReport]:
    record = _object(payload, "postmark payload")
    record_type = _required_str(record, "RecordType", "postmark payload")
    if record_type == "SpamComplaint":
        kind: BounceKind | None = BounceKind.COMPLAINT
    elif record_type == "Bounce":
        bounce_type = record.get("Type")
        kind = (
            BounceKind.HARD
            if bounce_type in _POSTMARK_HARD
            else BounceKind.SOFT
            if bounce_type in _POSTMARK_SOFT
            else BounceKind.COMPLAINT
            if bounce_type in _POSTMARK_COMPLAINT
            else None  # auto-responders, subscribe/unsubscribe requests: no delivery fact
        )
    else:
        return []
    if kind is None:
        return []
    details = _optional_str(record, "Details", "postmark payload")
    description = _optional_str(record, "Description", "postmark payload")
    return [
        BounceReport(
            recipient=_required_str(record, "Email", "postmark payload"),
            kind=kind,
            status=_status(details),
            diagnostic=_short(details or description),
            message_id=_postmark_message_id(record),
        )
    ]


def _postmark_message_id(record: Mapping[str, Any]) -> str | None:
    # Postmark's MessageID is its own; ours survives only if we passed it as metadata or a header.
    candidates: list[Any] = []
    metadata = record.get("Metadata")
    if isinstance(metadata, Mapping):
        candidates.extend(v for k, v in metadata.items() if isinstance(k, str) and _is_message_id_key(k))
    headers = record.get("Headers")
    if isinstance(headers, list):
        candidates.extend(
            h.get("Value")
            for h in headers
            if isinstance(h, Mapping) and isinstance(h.get("Name"), str) and _is_message_id_key(h["Name"])
        )
    for candidate in candidates:
        message_id = _message_id(candidate)
        if message_id is not None and _OUR_MESSAGE_ID.match(message_id):
            return message_id
    return None


def _is_message_id_key(key: str) -> bool:
    return key.lower().replace("-", "_") == "message_id"


_PROVIDER_PARSERS = {
    "generic": _generic,
    "ses": _ses,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
}


def _check_batch(provider: str, events: list[Any]) -> None:
    if len(events) > MAX_EVENTS:
        raise InvalidBounce(f"{provider}: {len(events)} events in one request, at most {MAX_EVENTS}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidBounce(f"{where}: expected a JSON object, got {_json_type(value)}")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidBounce(f"{where}: expected a JSON array, got {_json_type(value)}")
    return value


def _required_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidBounce(f"{where}: {key} must be a non-empty string, got {_json_type(value)}")
    return value.strip()


def _optional_str(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidBounce(f"{where}: {key} must be a string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


__all__ = [
    "PROVIDERS",
    "BounceKind",
    "BounceReport",
    "InvalidBounce",
    "parse_dsn",
    "parse_provider_event",
]
