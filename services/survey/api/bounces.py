"""Bounce webhooks: the sending providers' bounce and complaint events, and DSN emails posted raw.
The payloads are parsed by :mod:`services.survey.adapters.bounces`."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from libs.common.db import UnitOfWork
from libs.common.deps import UoW
from libs.common.http import error_responses
from services.survey import handlers
from services.survey.adapters.bounces import PROVIDERS, InvalidBounce, parse_dsn, parse_provider_event
from services.survey.api.dependencies import SurveyConfig
from services.survey.config import SurveySettings
from services.survey.repository import SurveyRepository

BOUNCES = Counter("nps_survey_bounce_reports_total", "Bounce reports received, by kind", ["kind"])

bounce_router = APIRouter(tags=["bounces"], responses=error_responses(400, 401, 404, 422))


class BounceResult(BaseModel):
    reports: int
    hard_bounces: int
    soft_bounces: int
    complaints: int
    invitations_matched: int


def _require_bounce_token(request: Request, settings: SurveySettings, in_path: str | None = None) -> None:
    """``Authorization: Bearer <token>``, or the token as the last path segment for providers
    that cannot send headers (SNS, SendGrid, Mailgun post to a bare URL). Compared in constant
    time; the service logs no request paths."""
    configured = settings.bounce_webhook_token
    if configured is None:
        raise HTTPException(404, "bounce webhooks are off: set BOUNCE_WEBHOOK_TOKEN to turn them on")
    secret = configured.get_secret_value().encode()
    if in_path is not None:
        given = in_path.encode()
    else:
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").encode() if header.startswith("Bearer ") else b""
    if not hmac.compare_digest(given, secret):
        raise HTTPException(401, "missing or wrong bounce webhook token")


async def _bounced(uow: UnitOfWork[SurveyRepository], reports: list[Any]) -> BounceResult:
    for report in reports:
        BOUNCES.labels(report.kind.value).inc()
    counts = await handlers.handle_bounces(uow, reports, now=datetime.now(UTC))
    await uow.commit()
    return BounceResult(**counts)


async def _dsn(
    request: Request, uow: UnitOfWork[SurveyRepository], settings: SurveySettings, token: str | None
) -> BounceResult:
    _require_bounce_token(request, settings, token)
    try:
        reports = parse_dsn(await request.body())
    except InvalidBounce as error:
        raise HTTPException(422, str(error)) from None
    return await _bounced(uow, reports)


async def _provider_event(
    provider: str,
    request: Request,
    uow: UnitOfWork[SurveyRepository],
    settings: SurveySettings,
    token: str | None,
) -> BounceResult:
    _require_bounce_token(request, settings, token)
    if provider not in PROVIDERS:
        raise HTTPException(404, f"unknown provider {provider[:50]!r}; known: {', '.join(sorted(PROVIDERS))}")
    try:
        payload = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "body is not valid JSON") from None
    try:
        reports = parse_provider_event(provider, payload)
    except (InvalidBounce, ValidationError) as error:
        raise HTTPException(422, str(error)[:500]) from None
    return await _bounced(uow, reports)


@bounce_router.post("/v1/bounces/dsn")
async def bounce_dsn(request: Request, uow: UoW, settings: SurveyConfig) -> BounceResult:
    """A delivery status notification (RFC 3464) or complaint report (RFC 5965) email, as delivered
    to the bounce mailbox, posted raw (`message/rfc822`). Hard bounces and complaints stop every
    further email to the address and are passed to the trigger. `Authorization: Bearer
    $BOUNCE_WEBHOOK_TOKEN`, or the token as a last path segment (`/v1/bounces/dsn/<token>`)."""
    return await _dsn(request, uow, settings, None)


@bounce_router.post("/v1/bounces/dsn/{token}", include_in_schema=False)
async def bounce_dsn_token_in_path(
    token: str, request: Request, uow: UoW, settings: SurveyConfig
) -> BounceResult:
    return await _dsn(request, uow, settings, token)


@bounce_router.post("/v1/bounces/{provider}")
async def bounce_event(provider: str, request: Request, uow: UoW, settings: SurveyConfig) -> BounceResult:
    """A sending provider's bounce/complaint webhook: `ses` (also in its SNS envelope),
    `sendgrid`, `mailgun`, `postmark` or `generic` (`{"email", "type": "hard_bounce"|"soft_bounce"|
    "complaint"}`). `Authorization: Bearer $BOUNCE_WEBHOOK_TOKEN`, or, for providers that cannot
    send headers, the token as a last path segment: `/v1/bounces/<provider>/<token>`."""
    return await _provider_event(provider, request, uow, settings, None)


@bounce_router.post("/v1/bounces/{provider}/{token}", include_in_schema=False)
async def bounce_event_token_in_path(
    provider: str, token: str, request: Request, uow: UoW, settings: SurveyConfig
) -> BounceResult:
    return await _provider_event(provider, request, uow, settings, token)
