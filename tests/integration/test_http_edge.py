"""The HTTP edge every service shares, seen from a client: one error shape, outages as 503, the
OpenAPI document saying what the answers are, the docs served offline, curl's JSON, NUL bytes,
and no redirect that echoes the Host header."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
from fastapi import APIRouter

from libs.common.app import create_app
from libs.common.service import Runtime
from libs.devstack.ports import free_port
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from services.survey.domain.tokens import survey_token
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import StartService, TestTenant, provision_tenant
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_survey_flow import (
    SECRET,
    asked_once,
    invitation_in,
    survey_service,
)
from tests.support.factories import purchase


def assert_error_shape(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail", "problems"}, body
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert all(set(problem) == {"field", "message"} for problem in body["problems"]), body
    return body


async def trigger(start_service: StartService) -> tuple[Any, TestTenant]:
    service = await start_service(build_trigger, TriggerSettings)
    return service, await provision_tenant(service.runtime)


async def test_every_error_has_one_shape_with_a_specific_code(start_service: StartService) -> None:
    service, tenant = await trigger(start_service)
    client, auth = service.client, tenant.headers

    assert_error_shape(await client.get("/v1/nope"), 404, "not_found")
    assert_error_shape(await client.get("/v1/policy"), 401, "unauthorized")
    assert_error_shape(await client.get("/v1/policy", headers={"X-API-Key": "nope"}), 401, "unauthorized")
    missing = assert_error_shape(
        await client.get("/v1/touchpoints/no-such-one/versions", headers=auth), 404, "not_found"
    )
    assert "no-such-one" in missing["detail"]
    broken = await client.put(
        "/v1/policy", content=b'{"rest_period_days": ', headers={**auth, "Content-Type": "application/json"}
    )
    assert_error_shape(broken, 400, "invalid_json")

    invalid = assert_error_shape(
        await client.put("/v1/policy", json={"rest_period_days": -1, "rest_clock": "moon"}, headers=auth),
        422,
        "invalid_request",
    )
    fields = [problem["field"] for problem in invalid["problems"]]
    assert fields == ["body.rest_period_days", "body.rest_clock"]
    assert invalid["detail"] == "; ".join(f"{p['field']}: {p['message']}" for p in invalid["problems"])

    no_mapping = assert_error_shape(
        await client.post("/v1/webhooks", json={"platform": "generic"}, headers=auth), 422, "invalid_request"
    )
    assert [problem["field"] for problem in no_mapping["problems"]] == ["body.mapping"]

    # A path with several routes: the 405 names every method they allow.
    wrong_method = await client.post("/v1/touchpoints/webshop-purchase", headers=auth)
    assert_error_shape(wrong_method, 405, "method_not_allowed")
    assert {"PUT", "DELETE"} <= {method.strip() for method in wrong_method.headers["allow"].split(",")}

    # Every event rejected: one problem per event, named by its place in the batch.
    good = purchase("c-1", event_id=f"order-{uuid.uuid4().hex}", order_id="1", email="not-an-address")
    rejected = assert_error_shape(
        await client.post("/v1/events", json=[{**good, "type": "nope.v1"}, "x", good], headers=auth),
        422,
        "invalid_event",
    )
    assert [problem["field"] for problem in rejected["problems"]] == ["[0].type", "[1]", "[2].data.email"]
    one = assert_error_shape(await client.post("/v1/events", json=good, headers=auth), 422, "invalid_event")
    assert [problem["field"] for problem in one["problems"]] == ["data.email"]


async def test_the_survey_settings_name_each_bad_field(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    bad = await service.client.put(
        "/v1/survey-settings",
        json={"brand_colour": "red", "logo_url": "http://x.example/logo.png"},
        headers=tenant.headers,
    )
    body = assert_error_shape(bad, 422, "invalid_request")
    assert {p["field"] for p in body["problems"]} == {"body.brand_colour", "body.logo_url"}


async def test_an_unhandled_error_is_a_500_without_its_insides(start_service: StartService) -> None:
    boom = APIRouter()

    @boom.get("/v1/boom")
    async def fail() -> None:
        raise RuntimeError("SELECT secret_column FROM scoring.tallies")

    service = await start_service(build_scoring, ScoringSettings)
    runtime = Runtime(replace(service.runtime.definition, routers=[boom]), service.runtime.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False),
        base_url="http://testserver",
    ) as client:
        response = await client.get("/v1/boom")
    body = assert_error_shape(response, 500, "internal_error")
    assert "SELECT" not in response.text and "Traceback" not in response.text and "secret" not in str(body)
    await runtime.database.dispose()


async def test_an_unreachable_database_answers_503_with_retry_after(start_service: StartService) -> None:
    service = await start_service(build_scoring, ScoringSettings)
    tenant = await provision_tenant(service.runtime)
    # The same service, its database on a port where nothing listens.
    closed = service.runtime.settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://nps:nps@127.0.0.1:{free_port()}/nps"}
    )
    runtime = Runtime(service.runtime.definition, closed)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://testserver"
    ) as client:
        response = await client.get("/v1/nps", headers=tenant.headers)
    body = assert_error_shape(response, 503, "unavailable")
    assert response.headers["retry-after"] == "5"
    assert "127.0.0.1" not in body["detail"]
    await runtime.database.dispose()


async def test_the_openapi_document_declares_the_real_error_answers(start_service: StartService) -> None:
    service, _ = await trigger(start_service)
    document = (await service.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ErrorBody" in schemas
    assert set(schemas["ErrorBody"]["required"]) >= {"error", "detail"}
    security = document["components"]["securitySchemes"]
    assert security["ApiKeyBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The tenant's API key: `Authorization: Bearer <key>`",
    }
    assert (security["ApiKeyHeader"]["in"], security["ApiKeyHeader"]["name"]) == ("header", "X-API-Key")
    put_policy = document["paths"]["/v1/policy"]["put"]
    assert {"ApiKeyBearer": []} in put_policy["security"]
    for status in ("400", "401", "413", "415", "422", "500", "503"):
        schema = put_policy["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    assert "Retry-After" in put_policy["responses"]["503"]["headers"]

    survey = await survey_service(start_service)
    pages = (await survey.client.get("/openapi.json")).json()["paths"]["/s/{token}"]["get"]["responses"]
    assert {"404", "410", "429"} <= set(pages) and "text/html" in pages["429"]["content"]


async def test_the_docs_load_nothing_from_elsewhere(start_service: StartService) -> None:
    service = await _alerting(start_service)
    for page in ("/docs", "/redoc"):
        html = (await service.client.get(page)).text
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), html
        assets = re.findall(r"(?:src|href)=[\"']?(/[^\"' >]+)", html)
        assert any(asset.endswith(".js") for asset in assets), html
        for asset in assets:
            fetched = await service.client.get(asset)
            assert fetched.status_code == 200, asset
    swagger = (await service.client.get("/docs")).text
    assert "swagger-ui.css" in swagger and "/openapi.json" in swagger


async def test_json_sent_the_way_curl_sends_it_is_taken(start_service: StartService) -> None:
    service, tenant = await trigger(start_service)
    as_curl = {**tenant.headers, "Content-Type": "application/x-www-form-urlencoded"}
    changed = await service.client.put("/v1/policy", content=b'{"rest_period_days": 90}', headers=as_curl)
    assert changed.status_code == 200, changed.text
    assert (await service.client.get("/v1/policy", headers=tenant.headers)).json()["rest_period_days"] == 90
    not_json = await service.client.put(
        "/v1/policy", content=b"rest_period_days=90", headers={**tenant.headers, "Content-Type": "text/plain"}
    )
    assert (
        "Content-Type: application/json"
        in assert_error_shape(not_json, 415, "unsupported_media_type")["detail"]
    )

    # Streamed without a length, JSON or not, a body over the limit is refused as too large.
    limit = service.runtime.settings.max_body_bytes

    async def too_much() -> AsyncIterator[bytes]:
        yield b'{"rest_period_days": "' + b"9" * limit + b'"}'

    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        streamed = await service.client.put(
            "/v1/policy", content=too_much(), headers={**tenant.headers, "Content-Type": content_type}
        )
        assert_error_shape(streamed, 413, "payload_too_large")

    survey = await survey_service(start_service)
    survey_tenant = await provision_tenant(survey.runtime)
    saved = await survey.client.put(
        "/v1/survey-settings",
        content=b'{"sender_name": "Acme"}',
        headers={**survey_tenant.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert saved.status_code == 200 and saved.json()["sender_name"] == "Acme", saved.text


async def test_nul_bytes_are_refused_naming_the_field(start_service: StartService) -> None:
    service, tenant = await trigger(start_service)
    refused = await service.client.get("/v1/decisions?customer=a%00b", headers=tenant.headers)
    body = assert_error_shape(refused, 422, "invalid_request")
    assert [p["field"] for p in body["problems"]] == ["query.customer"]

    survey = await survey_service(start_service)
    survey_tenant = await provision_tenant(survey.runtime)
    refused = await survey.client.get("/v1/invitations?customer=a%00b", headers=survey_tenant.headers)
    assert [p["field"] for p in assert_error_shape(refused, 422, "invalid_request")["problems"]] == [
        "query.customer"
    ]
    settings = await survey.client.put(
        "/v1/survey-settings/touchpoints/webshop-purchase",
        json={"label": {"en": "your\u0000order"}},
        headers=survey_tenant.headers,
    )
    assert [p["field"] for p in assert_error_shape(settings, 422, "invalid_request")["problems"]] == [
        "body.label.en"
    ]

    alerting = await _alerting(start_service)
    alerting_tenant = await provision_tenant(alerting.runtime)
    patched = await alerting.client.patch(
        f"/v1/cases/{uuid.uuid4()}",
        json={"status": "contacted", "note": "called\u0000back"},
        headers=alerting_tenant.headers,
    )
    assert [p["field"] for p in assert_error_shape(patched, 422, "invalid_request")["problems"]] == [
        "body.note"
    ]


async def test_a_trailing_slash_serves_the_page_and_never_echoes_the_host(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service, tenant, customer, _, invitation_id = await asked_once(start_service, kafka_bootstrap)
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    token = survey_token(SECRET, invitation_id)
    forged = {"Host": "evil.example"}
    for path in (f"/s/{token}/", f"/s/{token}/7/", f"/u/{token}/"):
        page = await service.client.get(path, headers=forged)
        assert page.status_code == 200, path
        assert "evil.example" not in page.headers.get("location", "") and "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")
        without = await service.client.get(path.rstrip("/"))
        assert page.text == without.text
    unknown = await service.client.get("/v1/invitations/", headers=forged)
    assert "location" not in unknown.headers and unknown.status_code == 404
