"""The verbatims feed and the CSV exports against the real broker and database: answers (and a
follow-up case) in on Kafka, what customers said out over HTTP."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from libs.common import topics
from libs.common.events import (
    FOLLOWUP_OPENED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    FollowupOpened,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


async def publish(bootstrap: str, events: Sequence[tuple[str, str, TestTenant, Contract]]) -> None:
    """(event type, topic, tenant, data) in order, each keyed by its customer, by one producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = []
        for event_type, topic, tenant, data in events:
            customer = str(getattr(data, "customer_id", "customer"))
            event = new_event(
                event_type, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/tests"
            )
            sent.append(await producer.send(topic, event.envelope.to_json(), key=customer.encode()))
        for delivery in sent:
            await delivery
    finally:
        await producer.stop()


def answer(
    touchpoint: str,
    score: int,
    comment: str | None,
    at: datetime,
    context: SurveyContext | None = None,
    response_id: uuid.UUID | None = None,
) -> SurveyResponded:
    customer_id = f"customer-{uuid.uuid4().hex[:8]}"
    return SurveyResponded(
        response_id=response_id or uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer_id,
        email=f"{customer_id}@shop.example",
        touchpoint=touchpoint,
        score=score,
        comment=comment,
        responded_at=at,
        context=context,
    )


async def get_feed(
    service: ServiceUnderTest, tenant: TestTenant, params: dict[str, str | int], expected: int = 200
) -> dict[str, Any]:
    response = await service.client.get("/v1/reports/verbatims", headers=tenant.headers, params=params)
    assert response.status_code == expected, response.text
    body: dict[str, Any] = response.json()
    return body


async def feed(service: ServiceUnderTest, tenant: TestTenant, **params: str | int) -> dict[str, Any]:
    return await get_feed(service, tenant, params)


def comments(body: dict[str, Any]) -> list[str]:
    return [entry["comment"] for entry in body["verbatims"]]


async def test_the_feed_shows_what_customers_wrote_newest_first_with_filters_pages_and_cases(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    stranger = await provision_tenant(reporting.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    danish = SurveyContext(
        locale="da-DK", account_id="A-17", attributes={"country": "DK", "category": "shoes, bags"}
    )
    hats = SurveyContext(locale="en", attributes={"country": "DK", "categories": "hats"})
    swedish = SurveyContext(locale="sv_SE", attributes={"country": "SE"})
    happy = answer(touchpoint, 10, "Fast delivery, 100% happy", NOW - timedelta(hours=1), danish)
    rude = answer(touchpoint, 3, "Slow and rude", NOW - timedelta(hours=2), swedish)
    passive = answer(touchpoint, 8, "OK I guess", NOW - timedelta(hours=3), hats)
    changed = answer(touchpoint, 6, "meh", NOW - timedelta(hours=4))
    # Two answers at one instant: the id breaks the tie, so pages neither skip nor repeat one.
    tie = NOW - timedelta(hours=5)
    tied = [answer(touchpoint, 10, "100 happy", tie), answer(touchpoint, 9, "Tied too", tie)]
    old = answer(touchpoint, 9, "Old news", NOW - timedelta(days=120))
    silent = [answer(touchpoint, 9, None, NOW), answer(touchpoint, 7, "", NOW)]
    theirs = answer(touchpoint, 10, "Fast delivery, 100% theirs", NOW - timedelta(minutes=30))
    case_id = uuid.uuid4()
    revision = SurveyResponseUpdated.model_validate(
        {
            **changed.model_dump(exclude={"email", "name"}),
            "revision": 2,
            "score": 9,
            "comment": "meh, actually great",
            "recommended": True,
            "csat": 5,
            "effort": 2,
            "updated_at": NOW,
        }
    )
    opened = FollowupOpened(
        case_id=case_id,
        response_id=passive.response_id,
        invitation_id=passive.invitation_id,
        customer_id=passive.customer_id,
        touchpoint=touchpoint,
        score=8,
        opened_at=NOW,
        due_at=NOW + timedelta(hours=48),
    )
    await publish(
        kafka_bootstrap,
        [
            *((SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, data) for data in (happy, rude, passive)),
            *(
                (SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, data)
                for data in (changed, *tied, old, *silent)
            ),
            (SURVEY_RESPONSE_UPDATED, topics.SURVEY_EVENTS, tenant, revision),
            (SURVEY_RESPONDED, topics.SURVEY_EVENTS, stranger, theirs),
            (FOLLOWUP_OPENED, topics.FOLLOWUPS, tenant, opened),
        ],
    )

    async def everything_arrived() -> dict[str, Any] | None:
        body = await feed(reporting, tenant)
        linked = [entry for entry in body["verbatims"] if entry["case"]]
        done = len(body["verbatims"]) == 6 and "meh, actually great" in comments(body) and linked
        return body if done else None

    body = await eventually(everything_arrived)
    tied_order = [data.comment for data in sorted(tied, key=lambda data: data.response_id, reverse=True)]
    assert comments(body) == [
        "Fast delivery, 100% happy",
        "Slow and rude",
        "OK I guess",
        "meh, actually great",
        *tied_order,
    ]
    assert body["next_cursor"] is None
    first = body["verbatims"][0]
    assert first == {
        "response_id": str(happy.response_id),
        "touchpoint": touchpoint,
        "score": 10,
        "category": "promoter",
        "comment": "Fast delivery, 100% happy",
        "recommended": None,
        "csat": None,
        "effort": None,
        "responded_at": first["responded_at"],
        "segments": {"country": "DK", "language": "da", "category": "shoes,bags", "account": "A-17"},
        "case": None,
    }
    assert datetime.fromisoformat(first["responded_at"]) == happy.responded_at
    revised = body["verbatims"][3]
    assert (revised["score"], revised["category"], revised["recommended"], revised["csat"]) == (
        9,
        "promoter",
        True,
        5,
    )
    desk = reporting.runtime.settings.desk_public_url
    assert body["verbatims"][2]["case"] == {
        "case_id": str(case_id),
        "status": "open",
        "url": f"{desk}/desk/cases/{case_id}",
    }

    # Filters.
    assert comments(await feed(reporting, tenant, category="detractor")) == ["Slow and rude"]
    assert comments(await feed(reporting, tenant, category="passive")) == ["OK I guess"]
    assert comments(await feed(reporting, tenant, segment="country:DK")) == [
        "Fast delivery, 100% happy",
        "OK I guess",
    ]
    assert comments(await feed(reporting, tenant, segment="category:bags")) == ["Fast delivery, 100% happy"]
    assert comments(await feed(reporting, tenant, segment="category:hats")) == ["OK I guess"]
    assert comments(await feed(reporting, tenant, segment="language:sv")) == ["Slow and rude"]
    assert comments(await feed(reporting, tenant, segment="account:A-17")) == ["Fast delivery, 100% happy"]
    assert comments(await feed(reporting, tenant, segment="country:'; DROP TABLE x; --")) == []
    assert comments(await feed(reporting, tenant, q="100%")) == ["Fast delivery, 100% happy"]
    assert comments(await feed(reporting, tenant, q="HAPPY")) == ["Fast delivery, 100% happy", "100 happy"]
    assert comments(await feed(reporting, tenant, q="_")) == []
    assert comments(await feed(reporting, tenant, touchpoint="elsewhere")) == []
    period = {
        "since": (NOW - timedelta(days=150)).isoformat(),
        "until": (NOW - timedelta(days=100)).isoformat(),
    }
    assert comments(await feed(reporting, tenant, **period)) == ["Old news"]
    assert comments(await feed(reporting, tenant, until=(NOW - timedelta(hours=3)).isoformat())) == [
        "meh, actually great",
        *tied_order,
    ]

    # Pages of two follow the cursor to the same answers, none skipped, none twice.
    paged: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = await get_feed(reporting, tenant, params)
        paged.extend(entry["response_id"] for entry in page["verbatims"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert paged == [entry["response_id"] for entry in body["verbatims"]]

    async def theirs_arrived() -> list[str]:
        return comments(await feed(reporting, stranger))

    assert await eventually(theirs_arrived) == ["Fast delivery, 100% theirs"]
    assert str(theirs.response_id) not in {entry["response_id"] for entry in body["verbatims"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 10**9}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "not a cursor"}, "query.cursor"),
        ({"cursor": "bm9wZQ"}, "query.cursor"),
        ({"q": "fast\x00"}, "query.q"),
        ({"q": "x" * 201}, "query.q"),
        ({"touchpoint": "' OR 1=1 --"}, "query.touchpoint"),
        ({"segment": "country"}, "query.segment"),
        ({"segment": "Country:DK"}, "query.segment"),
        ({"category": "happy"}, "query.category"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "query.since"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "query.since"),
        ({"until": "tomorrow"}, "query.until"),
        ({"until": "0001-01-02"}, "query.until"),
    ],
)
async def test_hostile_parameters_are_refused_naming_the_parameter(
    start_service: StartService, params: dict[str, str | int], field: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    body = await get_feed(reporting, tenant, params, expected=422)
    assert field in [problem["field"] for problem in body["problems"]], body
    if field in ("query.since", "query.touchpoint"):
        export = await reporting.client.get(
            "/v1/reports/export/responses.csv", headers=tenant.headers, params=params
        )
        assert export.status_code == 422
        assert field in [problem["field"] for problem in export.json()["problems"]]


async def test_the_exports_stream_every_answer_once_and_quote_formulas(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    stranger = await provision_tenant(reporting.runtime)
    touchpoint = f"support-{uuid.uuid4().hex[:8]}"
    start = NOW - timedelta(days=2)
    # Three answers to a second, so the batches' boundary (2,000 rows) falls inside a tie.
    answers = [
        answer(touchpoint, index % 11, None, start + timedelta(seconds=index // 3)) for index in range(3000)
    ]
    formula = answer(touchpoint, 2, '=HYPERLINK("http://evil.example","click")', NOW - timedelta(hours=1))
    formula = formula.model_copy(update={"customer_id": "@admin"})
    case_id = uuid.uuid4()
    opened = FollowupOpened(
        case_id=case_id,
        response_id=formula.response_id,
        invitation_id=formula.invitation_id,
        customer_id=formula.customer_id,
        touchpoint=touchpoint,
        score=2,
        opened_at=NOW,
        due_at=NOW + timedelta(hours=48),
        assignee_name="-Eve",
    )
    await publish(
        kafka_bootstrap,
        [
            *((SURVEY_RESPONDED, topics.SURVEY_EVENTS, tenant, data) for data in (*answers, formula)),
            (SURVEY_RESPONDED, topics.SURVEY_EVENTS, stranger, answer(touchpoint, 9, "theirs", NOW)),
            (FOLLOWUP_OPENED, topics.FOLLOWUPS, tenant, opened),
        ],
    )

    async def all_counted() -> bool:
        summary = await reporting.client.get("/v1/reports/summary", headers=tenant.headers)
        cases = summary.json()["cases"]
        return bool(summary.json()["responses"] == 3001 and cases["open"] == 1)

    await eventually(all_counted, within=30)
    response = await reporting.client.get("/v1/reports/export/responses.csv", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="responses_')
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    ids = [row["response_id"] for row in rows]
    assert len(ids) == 3001
    assert set(ids) == {str(data.response_id) for data in (*answers, formula)}
    assert [datetime.fromisoformat(row["responded_at"]) for row in rows] == sorted(
        datetime.fromisoformat(row["responded_at"]) for row in rows
    )
    quoted = rows[-1]
    assert quoted["comment"] == '\'=HYPERLINK("http://evil.example","click")'
    assert (quoted["customer_id"], quoted["nps_category"]) == ("'@admin", "detractor")

    cases = await reporting.client.get(
        "/v1/reports/export/cases.csv", headers=tenant.headers, params={"touchpoint": touchpoint}
    )
    assert cases.status_code == 200
    assert cases.headers["content-disposition"].startswith('attachment; filename="cases_')
    case_rows = list(csv.DictReader(io.StringIO(cases.text, newline="")))
    assert [(row["case_id"], row["response_id"], row["assignee_name"]) for row in case_rows] == [
        (str(case_id), str(formula.response_id), "'-Eve")
    ]
