"""The outbound webhooks' rules: the retry schedule lasts at least 24 h whatever the jitter, a
rotation signs with both secrets for its overlap only, each one-off case change is announced
once, and only a touchpoint's all-time score becomes ``nps.changed``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from libs.common.events import FollowupUpdated, NpsUpdated, NpsWindow
from services.alerting.domain import webhooks as rules

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@given(st.lists(st.floats(min_value=0, max_value=0.999), min_size=len(rules.RETRY_DELAYS), max_size=7))
def test_the_retries_last_at_least_24_hours_then_stop(jitters: list[float]) -> None:
    waits = [rules.retry_delay(attempt, jitter) for attempt, jitter in enumerate(jitters, start=1)]
    assert all(wait is not None for wait in waits)
    assert sum((wait for wait in waits if wait is not None), timedelta()) >= timedelta(hours=24)
    assert rules.retry_delay(len(rules.RETRY_DELAYS) + 1, 0.5) is None


def test_during_a_rotation_either_secret_verifies_and_after_it_only_the_new_one() -> None:
    old, new = rules.new_secret(), rules.new_secret()
    assert old.startswith("whsec_") and old != new
    until = NOW + rules.ROTATION_OVERLAP
    body = '{"type":"webhook.ping"}'
    during = rules.signing_secrets(new, old, until, NOW)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
    }
    headers["webhook-signature"] = rules.signature_header(
        during, "msg_1", datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC), body
    )
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    after = rules.signing_secrets(new, old, until, until + timedelta(seconds=1))
    assert after == [new]
    headers["webhook-signature"] = rules.signature_header(
        after, "msg_1", datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC), body
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def _update(**fields: object) -> FollowupUpdated:
    values: dict[str, object] = {
        "case_id": uuid.UUID(int=7),
        "status": "open",
        "breached": False,
        "updated_at": NOW,
        **fields,
    }
    return FollowupUpdated.model_validate(values)


def test_a_breach_a_resolution_and_a_recovery_are_each_announced_once() -> None:
    marks = rules.CaseMarks()
    told, marks = rules.case_changes("e1", _update(breached=True), "c-1", marks)
    assert [item.type for item in told] == ["case.updated", "case.breached"]
    told, marks = rules.case_changes("e2", _update(breached=True, status="contacted"), "c-1", marks)
    assert [item.type for item in told] == ["case.updated"]
    told, marks = rules.case_changes(
        "e3", _update(breached=True, status="resolved", resolved_at=NOW), "c-1", marks
    )
    assert [item.type for item in told] == ["case.updated", "case.resolved"]
    told, marks = rules.case_changes(
        "e4", _update(breached=True, status="resolved", resolved_at=NOW, recovery_score=9), "c-1", marks
    )
    assert [item.type for item in told] == ["case.updated", "recovery.measured"]
    assert all(item.ordering_key == "customer:c-1" for item in told)
    # Reopened (the breach is cleared), then breached again: told again.
    told, marks = rules.case_changes("e5", _update(status="open", recovery_score=9), "c-1", marks)
    told, marks = rules.case_changes("e6", _update(breached=True, recovery_score=9), "c-1", marks)
    assert [item.type for item in told] == ["case.updated", "case.breached"]


def test_only_the_all_time_score_of_everybody_is_announced() -> None:
    base = {
        "touchpoint": "checkout",
        "promoters": 3,
        "passives": 1,
        "detractors": 1,
        "responses": 5,
        "nps": 40.0,
        "as_of": NOW,
    }
    overall = rules.nps_changed("e", NpsUpdated.model_validate(base))
    assert overall is not None and overall.data["nps"] == 40.0
    daily = NpsUpdated.model_validate(
        {**base, "window": NpsWindow(bucket="day", start=NOW.date(), end=NOW.date() + timedelta(days=1))}
    )
    assert rules.nps_changed("e", daily) is None
