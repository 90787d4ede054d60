"""Contact-history import over HTTP and through the import function, against real Postgres: the
imported times become rest-period clocks that the intake's decisions honour."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from services.trigger.history import import_history
from tests.conftest import ServiceUnderTest, StartService, TestTenant
from tests.support.factories import purchase
from tests.support.services import post_event, trigger_with_tenant

NOW = datetime.now(UTC).replace(microsecond=0)
REST_PERIOD = timedelta(days=180)  # the trigger's default
EAST = timezone(timedelta(hours=2))


async def post_csv(service: ServiceUnderTest, tenant: TestTenant, csv_text: str | bytes) -> Any:
    body = csv_text.encode() if isinstance(csv_text, str) else csv_text
    return await service.client.post(
        "/v1/contact-history", content=body, headers={**tenant.headers, "Content-Type": "text/csv"}
    )


async def skipped_until(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> datetime:
    """A purchase of ``customer`` that must be skipped for the rest period; returns when it ends."""
    result = await post_event(service, tenant, purchase(customer))
    assert (result["decision"], result["reason"]) == ("skipped", "rest_period"), result
    response = await service.client.get(
        "/v1/decisions", params={"customer": customer}, headers=tenant.headers
    )
    latest = response.json()["decisions"][0]
    assert latest["event_id"] == result["id"]
    return datetime.fromisoformat(latest["rest_until"])


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


async def test_an_import_reports_bad_lines_and_its_times_start_the_rest_period(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    recent, old, with_zone = (f"c-{uuid.uuid4().hex}" for _ in range(3))
    response = await post_csv(
        service,
        tenant,
        "customer_id,last_surveyed_at,email\n"
        f"{recent},{days_ago(10).isoformat()},jane@example.com\n"
        f",{days_ago(10).date().isoformat()},\n"
        f"{old},{days_ago(200).date().isoformat()},\n"
        f"{with_zone},2024-13-45,\n"
        f"{with_zone},{days_ago(20).astimezone(EAST).isoformat()},\n",
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "rows": 5,
        "imported": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "errors": [
            {"line": 3, "problem": "customer_id: missing"},
            {"line": 5, "problem": "last_surveyed_at: not a date: '2024-13-45'"},
        ],
        "errors_total": 2,
    }

    assert await skipped_until(service, tenant, recent) == days_ago(10) + REST_PERIOD
    assert await skipped_until(service, tenant, with_zone) == days_ago(20) + REST_PERIOD
    assert (await post_event(service, tenant, purchase(old)))["decision"] == "invited"


async def test_an_older_date_never_moves_a_clock_back_and_a_later_one_moves_it_forward(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    kept, moved = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    first = await post_csv(
        service,
        tenant,
        f"customer;last_surveyed_at\n{kept};{days_ago(10).isoformat()}\n{moved};{days_ago(300).isoformat()}\n",
    )
    assert first.json()["created"] == 2
    second = await post_csv(
        service,
        tenant,
        f"customer;last_surveyed_at\n{kept};{days_ago(300).isoformat()}\n{moved};{days_ago(5).isoformat()}\n",
    )
    assert (second.json()["updated"], second.json()["unchanged"]) == (1, 1)
    for customer, surveyed in ((kept, days_ago(10)), (moved, days_ago(5))):
        assert await skipped_until(service, tenant, customer) == surveyed + REST_PERIOD


async def test_an_import_never_moves_back_the_clock_of_an_invitation_made_here(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    assert (await post_event(service, tenant, purchase(customer)))["decision"] == "invited"
    response = await post_csv(service, tenant, f"customer_id,last_surveyed_at\n{customer},2020-01-01\n")
    assert response.json()["unchanged"] == 1
    assert (await post_event(service, tenant, purchase(customer)))["reason"] == "rest_period"


async def test_one_customer_twice_in_a_file_keeps_the_latest_time(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    response = await post_csv(
        service,
        tenant,
        "customer_id\tlast_surveyed_at\n"
        f"{customer}\t{days_ago(3).isoformat()}\n"
        f"{customer}\t{days_ago(300).isoformat()}\n",
    )
    assert response.status_code == 200, response.text
    assert (response.json()["imported"], response.json()["created"]) == (2, 1)
    assert await skipped_until(service, tenant, customer) == days_ago(3) + REST_PERIOD


async def test_another_tenants_import_does_not_touch_this_tenants_customers(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    _, other = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    response = await post_csv(
        service, other, f"customer_id,last_surveyed_at\n{customer},{days_ago(1).isoformat()}\n"
    )
    assert response.json()["imported"] == 1
    assert (await post_event(service, tenant, purchase(customer)))["decision"] == "invited"
    assert (await post_event(service, other, purchase(customer)))["reason"] == "rest_period"


async def test_an_email_is_stored_only_where_none_is_known(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    known, unknown = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    await post_csv(
        service, tenant, f"customer_id,last_surveyed_at,email\n{known},2026-01-01,first@example.com\n"
    )
    await post_csv(
        service,
        tenant,
        "customer_id,last_surveyed_at,email\n"
        f"{known},2026-01-02,second@example.com\n{unknown},2026-01-02,new@example.com\n",
    )
    async with service.runtime.database.uow() as uow:
        rows = await uow.session.execute(
            text("SELECT customer_id, email FROM trigger.customers WHERE tenant_id = :tenant"),
            {"tenant": uuid.UUID(tenant.tenant_id)},
        )
        assert {row.customer_id: row.email for row in rows} == {
            known: "first@example.com",
            unknown: "new@example.com",
        }


async def test_files_that_cannot_be_read_are_refused_naming_the_problem(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    missing_column = await post_csv(service, tenant, f"customer_id,surveyed\n{customer},2026-01-01\n")
    assert missing_column.status_code == 422
    assert "'last_surveyed_at'" in missing_column.json()["detail"]
    latin1 = await post_csv(
        service, tenant, "customer_id,last_surveyed_at\nJ\xf8rgen,2026-01-01\n".encode("latin-1")
    )
    assert latin1.status_code == 422
    assert "not UTF-8" in latin1.json()["detail"] and "line 2" in latin1.json()["detail"]
    empty = await post_csv(service, tenant, b"")
    assert (empty.status_code, "empty" in empty.json()["detail"]) == (422, True)

    post = service.client.post
    body = f"customer_id,last_surveyed_at\n{customer},2026-01-01\n"
    as_json = await post("/v1/contact-history", json={"csv": body}, headers=tenant.headers)
    assert as_json.status_code == 415 and "text/csv" in as_json.json()["detail"]
    latin1_declared = await post(
        "/v1/contact-history",
        content=body,
        headers={**tenant.headers, "Content-Type": "text/csv; charset=latin-1"},
    )
    assert latin1_declared.status_code == 415
    anonymous = await post("/v1/contact-history", content=body, headers={"Content-Type": "text/csv"})
    assert anonymous.status_code == 401
    # Nothing of the refused files landed.
    assert (await post_event(service, tenant, purchase(customer)))["decision"] == "invited"


async def test_bad_rows_are_all_counted_and_the_first_thousand_listed(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    lines = ["customer_id,last_surveyed_at"] + [f"c{n},not-a-date" for n in range(1500)]
    response = await post_csv(service, tenant, "\n".join(lines) + "\n")
    body = response.json()
    assert (body["rows"], body["imported"], body["errors_total"]) == (1500, 0, 1500)
    assert len(body["errors"]) == 1000
    assert body["errors"][-1] == {"line": 1001, "problem": "last_surveyed_at: not a date: 'not-a-date'"}


class _ProgressRecorder:
    def __init__(self) -> None:
        self.positions: list[int] = []

    def __call__(self, position: int) -> None:
        self.positions.append(position)


async def test_a_hundred_thousand_rows_stream_through_in_batches_and_all_land(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    surveyed = days_ago(7).isoformat()
    prefix = uuid.uuid4().hex[:8]
    csv_bytes = (
        "customer_id,last_surveyed_at\n" + "".join(f"{prefix}-{n},{surveyed}\n" for n in range(100_000))
    ).encode()
    progress = _ProgressRecorder()
    async with service.runtime.database.uow() as uow:
        report = await import_history(
            uow,
            uuid.UUID(tenant.tenant_id),
            io.BytesIO(csv_bytes),
            now=datetime.now(UTC),
            on_progress=progress,
        )
    assert (report.rows, report.imported, report.created, report.bad_rows_total) == (
        100_000,
        100_000,
        100_000,
        0,
    )
    # The file was read a batch at a time: the first batch was written when a small part was read.
    assert progress.positions == sorted(progress.positions)
    assert len(progress.positions) >= 20
    assert progress.positions[0] < len(csv_bytes) // 10
    assert progress.positions[-1] == len(csv_bytes)
    async with service.runtime.database.uow() as uow:
        landed = await uow.session.scalar(
            text(
                "SELECT count(*) FROM trigger.customers WHERE tenant_id = :tenant AND last_invited_at = :at"
            ),
            {"tenant": uuid.UUID(tenant.tenant_id), "at": datetime.fromisoformat(surveyed)},
        )
    assert landed == 100_000
    assert (await post_event(service, tenant, purchase(f"{prefix}-99999")))["reason"] == "rest_period"
