"""The README's verification example for outbound webhooks, run as written against the headers
and body the platform's sender makes: a tenant who copies it verifies real deliveries, including
those signed with two secrets during a rotation, and refuses altered ones."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from services.alerting.domain import webhooks as rules
from services.alerting.handlers.webhooks import signed_request
from services.alerting.repository_webhooks import ClaimedDelivery

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_verify() -> Callable[[str, bytes, dict[str, str]], Any]:
    text = README.read_text()
    section = text[text.index("### Outbound webhooks\n") :]
    section = section[: section.index("\n### ", 1)]
    [example] = re.findall(r"^```python\n(.*?)^```$", section, re.M | re.S)
    assert len([line for line in example.splitlines() if line.strip()]) <= 5
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    verify: Callable[[str, bytes, dict[str, str]], Any] = namespace["verify"]
    return verify


def _delivery(secret: str, previous: str | None = None) -> ClaimedDelivery:
    now = datetime.now(UTC)
    return ClaimedDelivery(
        id=1,
        message_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        event_type="case.opened",
        payload={"type": "case.opened", "timestamp": now.isoformat(), "data": {"case_id": "c", "score": 2}},
        attempts=1,
        created_at=now,
        url="https://crm.example.com/in",
        secret=secret,
        previous_secret=previous,
        previous_secret_until=None if previous is None else now + rules.ROTATION_OVERLAP,
    )


def test_the_readme_example_verifies_what_the_platform_sends() -> None:
    verify = _readme_verify()
    secret = rules.new_secret()
    body, headers = signed_request(_delivery(secret), datetime.now(UTC))
    assert verify(secret, body.encode(), headers)["data"]["score"] == 2
    with pytest.raises(WebhookVerificationError):
        verify(secret, body.replace('"score":2', '"score":9').encode(), headers)
    with pytest.raises(WebhookVerificationError):
        verify(rules.new_secret(), body.encode(), headers)


def test_the_readme_example_verifies_with_either_secret_during_a_rotation() -> None:
    verify = _readme_verify()
    old, new = rules.new_secret(), rules.new_secret()
    body, headers = signed_request(_delivery(new, previous=old), datetime.now(UTC))
    assert verify(old, body.encode(), headers) == verify(new, body.encode(), headers)


def test_the_readme_example_refuses_a_replayed_old_delivery() -> None:
    verify = _readme_verify()
    secret = rules.new_secret()
    body, headers = signed_request(_delivery(secret), datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        verify(secret, body.encode(), headers)
