"""HTTP routes of the survey: the public survey pages, and the tenant-scoped invitation API.

The survey pages take no API key: the token in the link is the credential. A ``GET`` or ``HEAD``
never records anything, because mail scanners and link previews fetch every link in an email;
only the form's ``POST`` does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from prometheus_client import Counter
from pydantic import BaseModel

from libs.common.db import UnitOfWork
from libs.common.http import Tenant, UoW
from services.survey import handlers, repository
from services.survey.domain.answers import (
    MAX_COMMENT_LENGTH,
    AnswerState,
    InvalidAnswer,
    parse_answer,
    parse_score,
)
from services.survey.handlers import SurveyLink
from services.survey.rendering import page

log = logging.getLogger(__name__)

RESPONSES = Counter("nps_survey_responses_total", "Survey answers recorded")

public_router = APIRouter(tags=["survey pages"])
router = APIRouter(tags=["invitations"])

# The URL holds a credential: keep it out of caches, search engines and Referer headers, and let
# the page load nothing but itself.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
}


def _html(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(page(template, **context), status_code=status_code, headers=_PAGE_HEADERS)


def _form(
    link: SurveyLink,
    token: str,
    *,
    status_code: int = 200,
    selected: int | None = None,
    comment: str | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    return _html(
        "survey.html",
        status_code,
        token=token,
        company=link.tenant_name,
        selected=selected,
        comment=comment,
        problem=problem,
        max_comment_length=MAX_COMMENT_LENGTH,
    )


async def _show(uow: UnitOfWork, token: str, selected: int | None) -> HTMLResponse:
    link = await handlers.find_link(uow, token)
    if link is None:
        return _html("not_found.html", 404)
    state = link.state(datetime.now(UTC))
    if state is AnswerState.ANSWERED:
        return _html("answered.html")
    if state is AnswerState.EXPIRED:
        return _html("expired.html", 410)
    return _form(link, token, selected=selected)


@public_router.get("/s/{token}", response_class=HTMLResponse)
@public_router.head("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
async def survey_page(token: str, uow: UoW) -> HTMLResponse:
    """The survey page of one invitation: the 0 to 10 scale and an optional comment. Records nothing.

    404 for an unknown link, 410 once the survey has closed.
    """
    return await _show(uow, token, None)


@public_router.get("/s/{token}/{score}", response_class=HTMLResponse)
@public_router.head("/s/{token}/{score}", response_class=HTMLResponse, include_in_schema=False)
async def survey_page_with_score(token: str, score: str, uow: UoW) -> HTMLResponse:
    """Where the email's score buttons lead: the survey page with that score chosen. Records
    nothing; the respondent confirms with the form (and may add a comment)."""
    return await _show(uow, token, parse_score(score))


@public_router.post("/s/{token}", response_class=HTMLResponse)
async def answer_survey(
    token: str,
    uow: UoW,
    score: Annotated[str | None, Form(description="0 to 10")] = None,
    comment: Annotated[
        str | None, Form(description=f"optional, at most {MAX_COMMENT_LENGTH} characters")
    ] = None,
) -> HTMLResponse:
    """Record the answer (form-encoded `score`, optional `comment`) and announce it as
    `survey.responded.v1`. Each invitation is answered once.

    200 thank-you page; 409 if answered already; 422 naming the problem with the answer; 404 for an
    unknown link; 410 once the survey has closed.
    """
    link = await handlers.find_link(uow, token)
    if link is None:
        return _html("not_found.html", 404)
    now = datetime.now(UTC)
    state = link.state(now)
    if state is AnswerState.ANSWERED:
        return _html("answered.html", 409)
    if state is AnswerState.EXPIRED:
        return _html("expired.html", 410)
    try:
        answer = parse_answer(score, comment)
    except InvalidAnswer as invalid:
        return _form(
            link,
            token,
            status_code=422,
            selected=parse_score(score),
            comment=comment,
            problem=invalid.problem,
        )
    if not await handlers.record_answer(uow, link, answer, now=now):
        return _html("answered.html", 409)
    await uow.commit()
    RESPONSES.inc()
    log.info(
        "survey.responded",
        extra={
            "invitation_id": str(link.invitation_id),
            "tenant_id": str(link.tenant_id),
            "score": answer.score,
        },
    )
    return _html("thanks.html", score=answer.score, company=link.tenant_name)


class InvitationView(BaseModel):
    invitation_id: uuid.UUID
    customer_id: str
    touchpoint: str
    status: str
    attempts: int
    send_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    responded_at: datetime | None
    last_error: str | None


class InvitationList(BaseModel):
    customer: str
    invitations: list[InvitationView]


@router.get("/v1/invitations")
async def get_invitations(
    tenant: Tenant,
    uow: UoW,
    customer: Annotated[str, Query(min_length=1, max_length=200, description="the customer id")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> InvitationList:
    """A customer's survey invitations, newest first: where delivery stands (`scheduled`,
    `sending`, `sent`, `failed` with the reason, `responded`) and when it was sent and answered."""
    rows = await repository.invitations_for_customer(uow.session, tenant.tenant_id, customer, limit)
    return InvitationList(
        customer=customer,
        invitations=[
            InvitationView(
                invitation_id=row.id,
                customer_id=row.customer_id,
                touchpoint=row.touchpoint,
                status=row.status,
                attempts=row.attempts,
                send_at=row.send_at,
                expires_at=row.expires_at,
                sent_at=row.sent_at,
                responded_at=row.responded_at,
                last_error=row.last_error,
            )
            for row in rows
        ],
    )
