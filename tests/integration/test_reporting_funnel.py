"""The funnel against the real broker and database: survey events in on Kafka, repeated and out of
order, the daily rollup they keep, and the funnel out over HTTP (``/v1/reports/funnel`` and the
summary's), whole days and partial ones."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from libs.common import topics
from libs.common.events import (
    SURVEY_BOUNCED,
    SURVEY_CLICKED,
    SURVEY_EXPIRED,
    SURVEY_FAILED,
    SURVEY_OPENED,
    SURVEY_REMINDED,
    SURVEY_RESPONDED,
    SURVEY_SENT,
    Contract,
    SurveyFailed,
    SurveyResponded,
    SurveySent,
    SurveyStep,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant

pytestmark = pytest.mark.integration

_MIGRATION_FILE = Path(__file__).parents[2] / "services/reporting/migrations/versions/0009_funnel_days.py"
_SPEC = importlib.util.spec_from_file_location("funnel_days_migration", _MIGRATION_FILE)
assert _SPEC is not None and _SPEC.loader is not None
_MIGRATION = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MIGRATION)

DAY = datetime(2025, 1, 10, tzinfo=UTC)


def at(days: int, hours: int, minutes: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hours, minutes=minutes)


class Customer:
    """One customer's survey events, on one key so they stay in this order; published together."""

    def __init__(self, tenant: TestTenant) -> None:
        self.tenant = tenant
        self.customer_id = f"customer-{uuid.uuid4().hex[:8]}"
        self.messages: list[bytes] = []

    def add(self, event_type: str, data: Contract, *, twice: bool = False) -> None:
        event = new_event(
            event_type, tenant_id=self.tenant.tenant_id, data=data, subject=self.customer_id, source="/tests"
        )
        self.messages.extend([event.envelope.to_json()] * (2 if twice else 1))

    def sent(self, touchpoint: str, invitation_id: uuid.UUID, sent_at: datetime, **kw: bool) -> None:
        data = SurveySent(
            invitation_id=invitation_id, customer_id=self.customer_id, touchpoint=touchpoint, sent_at=sent_at
        )
        self.add(SURVEY_SENT, data, **kw)

    def step(
        self,
        event_type: str,
        touchpoint: str,
        invitation_id: uuid.UUID,
        when: datetime,
        machine: bool = False,
    ) -> None:
        data = SurveyStep(
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            touchpoint=touchpoint,
            at=when,
            machine=machine,
        )
        self.add(event_type, data)

    def failed(self, touchpoint: str, invitation_id: uuid.UUID, when: datetime) -> None:
        data = SurveyFailed(
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            touchpoint=touchpoint,
            at=when,
            reason="refused",
        )
        self.add(SURVEY_FAILED, data)

    def responded(self, touchpoint: str, invitation_id: uuid.UUID, when: datetime) -> None:
        data = SurveyResponded(
            response_id=uuid.uuid4(),
            invitation_id=invitation_id,
            customer_id=self.customer_id,
            email=f"{self.customer_id}@shop.example",
            touchpoint=touchpoint,
            # A promoter: a detractor would make a running alerting service open a case.
            score=10,
            responded_at=when,
        )
        self.add(SURVEY_RESPONDED, data)

    async def publish(self, bootstrap: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for message in self.messages:
                await producer.send_and_wait(topics.SURVEY_EVENTS, message, key=self.customer_id.encode())
        finally:
            await producer.stop()


async def get(service: ServiceUnderTest, tenant: TestTenant, path: str, **params: str) -> dict[str, Any]:
    response = await service.client.get(path, headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def as_summary_funnel(panel: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The funnel JSON's panel in the summary's terms: (funnel, failed_by_reason)."""
    path = {step["step"]: step["invitations"] for step in panel["steps"]}
    others = ("machine_opened", "reminded", "bounced", "unsubscribed", "expired", "failed")
    funnel = {
        "sent": path["sent"],
        "opened": path["opened"],
        "clicked": path["clicked"],
        "responded": path["answered"],
        **{step: panel[step] for step in others},
    }
    return funnel, panel["failed_by_reason"]


def nonzero(funnel: dict[str, int]) -> dict[str, int]:
    return {step: n for step, n in funnel.items() if n}


async def funnel_and_summary(
    service: ServiceUnderTest, tenant: TestTenant, **params: str
) -> dict[str | None, dict[str, int]]:
    """Per touchpoint (None: overall), the funnel's non-zero counts, after checking that the funnel
    JSON says exactly what the summary says."""
    panel = await get(service, tenant, "/v1/reports/funnel", **params)
    summary = await get(service, tenant, "/v1/reports/summary", **params)
    assert as_summary_funnel(panel["overall"]) == (summary["funnel"], summary["failed_by_reason"])
    in_summary = {
        row["touchpoint"]: (row["funnel"], row["failed_by_reason"]) for row in summary["by_touchpoint"]
    }
    counts: dict[str | None, dict[str, int]] = {None: nonzero(summary["funnel"])}
    for row in panel["by_touchpoint"]:
        assert as_summary_funnel(row) == in_summary[row["touchpoint"]]
        counts[row["touchpoint"]] = nonzero(as_summary_funnel(row)[0])
    return counts


async def rollup_of(
    service: ServiceUnderTest, tenant: TestTenant, *, from_facts: bool = False
) -> set[tuple[object, ...]]:
    """The tenant's rollup rows that count something: as the projection kept them, or as the
    migration fills them from the facts."""
    source = _MIGRATION.ROLLUP_OF_FACTS if from_facts else "SELECT * FROM reporting.funnel_days"
    query = text(
        f"SELECT touchpoint, day, step, reason, invitations FROM ({source}) AS rollup"
        "(tenant_id, touchpoint, day, step, reason, invitations)"
        " WHERE tenant_id = :tenant AND invitations <> 0"
    )
    async with service.runtime.database.uow() as uow:
        rows = await uow.session.execute(query, {"tenant": uuid.UUID(tenant.tenant_id)})
        return {tuple(row) for row in rows}


async def test_the_funnel_counts_each_fact_once_by_whole_and_partial_days(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    stranger = await provision_tenant(reporting.runtime)
    checkout, support = f"checkout-{uuid.uuid4().hex[:8]}", f"support-{uuid.uuid4().hex[:8]}"
    first, second, given_up, answered = (uuid.uuid4() for _ in range(4))
    customer = Customer(tenant)
    # Out of order: the click before the send; the send twice as one event, and again as another.
    customer.step(SURVEY_CLICKED, checkout, first, at(0, 10))
    customer.sent(checkout, first, at(0, 9), twice=True)
    customer.sent(checkout, first, at(0, 9))
    customer.step(SURVEY_OPENED, checkout, first, at(0, 9, 5), machine=True)
    # A person opens it the next day: the machine's open of day 0 stops counting.
    customer.step(SURVEY_OPENED, checkout, first, at(1, 8))
    customer.step(SURVEY_CLICKED, checkout, first, at(1, 9))
    customer.sent(checkout, second, at(0, 20))
    customer.step(SURVEY_OPENED, checkout, second, at(0, 20, 1), machine=True)
    customer.step(SURVEY_REMINDED, checkout, second, at(1, 20))
    customer.step(SURVEY_EXPIRED, checkout, second, at(2, 6))
    customer.failed(checkout, given_up, at(1, 7))
    customer.failed(checkout, given_up, at(1, 8))
    customer.sent(support, answered, at(2, 2))
    customer.step(SURVEY_BOUNCED, support, answered, at(2, 2, 5))
    customer.responded(support, answered, at(2, 3))
    await customer.publish(kafka_bootstrap)

    whole = {"since": DAY.date().isoformat(), "until": at(3, 0).date().isoformat()}

    async def all_counted() -> bool:
        # The answer comes last on the customer's partition: once it counts, everything before does.
        summary = await get(reporting, tenant, "/v1/reports/summary", **whole)
        return bool(summary["funnel"]["responded"] == 1)

    await eventually(all_counted)
    assert await funnel_and_summary(reporting, tenant, **whole) == {
        None: {
            "sent": 3,
            "opened": 1,
            "machine_opened": 1,
            "clicked": 1,
            "responded": 1,
            "reminded": 1,
            "bounced": 1,
            "expired": 1,
            "failed": 1,
        },
        checkout: {
            "sent": 2,
            "opened": 1,
            "machine_opened": 1,
            "clicked": 1,
            "reminded": 1,
            "expired": 1,
            "failed": 1,
        },
        support: {"sent": 1, "bounced": 1, "responded": 1},
    }
    # From noon of day 0 to 04:00 of day 2: the partial days count only their part.
    partial = {"since": at(0, 12).isoformat(), "until": at(2, 4).isoformat()}
    assert (await funnel_and_summary(reporting, tenant, **partial))[checkout] == {
        "sent": 1,
        "opened": 1,
        "machine_opened": 1,
        "reminded": 1,
        "failed": 1,
    }
    same_day = {"since": at(0, 12).isoformat(), "until": at(0, 21).isoformat()}
    assert await funnel_and_summary(reporting, tenant, **same_day) == {
        None: {"sent": 1, "machine_opened": 1},
        checkout: {"sent": 1, "machine_opened": 1},
    }
    panel = await get(reporting, tenant, "/v1/reports/funnel", **whole)
    assert panel["overall"]["steps"] == [
        {"step": "sent", "invitations": 3, "share_of_sent": 1.0},
        {"step": "opened", "invitations": 1, "share_of_sent": 0.3333},
        {"step": "clicked", "invitations": 1, "share_of_sent": 0.3333},
        {"step": "answered", "invitations": 1, "share_of_sent": 0.3333},
    ]
    assert panel["overall"]["failed_by_reason"] == {"refused": 1}

    assert await rollup_of(reporting, tenant) == await rollup_of(reporting, tenant, from_facts=True)

    nothing = await get(reporting, stranger, "/v1/reports/funnel", **whole)
    assert nothing["by_touchpoint"] == []
    assert [step["invitations"] for step in nothing["overall"]["steps"]] == [0, 0, 0, 0]
    assert nothing["overall"]["steps"][1]["share_of_sent"] is None
    assert await funnel_and_summary(reporting, stranger, **partial) == {None: {}}


async def test_the_funnel_checks_its_range(start_service: StartService) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    default = await get(reporting, tenant, "/v1/reports/funnel")
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert datetime.fromisoformat(default["until"]) == datetime(
        tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC
    )
    assert datetime.fromisoformat(default["until"]) - datetime.fromisoformat(default["since"]) == timedelta(
        days=90
    )
    for params, named in (
        ({"since": "2025-01-02T10:00:00Z", "until": "2025-01-02T09:00:00Z"}, "since"),
        ({"since": "2020-01-01", "until": "2025-01-01"}, "since"),
        ({"until": "2300-01-01"}, "until"),
        ({"touchpoint": "Not A Touchpoint"}, "touchpoint"),
    ):
        response = await reporting.client.get("/v1/reports/funnel", headers=tenant.headers, params=params)
        assert response.status_code == 422, params
        assert named in response.text
    assert (await reporting.client.get("/v1/reports/funnel")).status_code == 401
