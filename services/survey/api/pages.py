"""The public survey pages: the score, the follow-up questions, the open pixel and unsubscribing.

They take no API key: the token in the link is the credential. A ``GET`` or ``HEAD`` never records
anything, because mail scanners and link previews fetch every link in an email; only the form's
``POST`` does.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.deps import UoW
from libs.common.events import nps_category
from libs.common.http import error_responses
from services.survey import handlers
from services.survey.api.dependencies import SurveyConfig, survey_settings
from services.survey.domain.answers import (
    MAX_COMMENT_LENGTH,
    AnswerState,
    InvalidAnswer,
    Problem,
    parse_answer,
    parse_follow_up,
    parse_score,
)
from services.survey.domain.opens import OpenedBy, opened_by
from services.survey.domain.ratelimit import PublicBuckets, PublicLimits, client_key, missed_bucket
from services.survey.domain.tokens import looks_like_token, token_hash
from services.survey.handlers import SurveyLink
from services.survey.rendering import page
from services.survey.repository import SurveyRepository

# The package's name: the logs of the survey's routes have always carried it.
log = logging.getLogger(__package__)

RESPONSES = Counter(
    "nps_survey_responses_total", "Survey answers by kind: score, score_replaced, follow_up", ["kind"]
)
PUBLIC_LIMITED = Counter("nps_survey_public_limited_total", "Public page requests refused with 429")
OPENS = Counter("nps_survey_opens_total", "Opens recorded, by who opened: a person or which machine", ["by"])

# The pages answer their errors as pages, for the person holding the link.
public_router = APIRouter(
    tags=["survey pages"], responses=error_responses(404, 409, 410, 422, 429, media_type="text/html")
)

# The URL holds a credential: keep it out of caches, search engines and Referer headers, and let
# the page load nothing but itself (and the tenant's logo).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _html(
    template: str, status_code: int = 200, link: SurveyLink | None = None, **context: Any
) -> HTMLResponse:
    language = link.language if link is not None else "en"
    if link is not None:
        branding = link.look.branding
        context.setdefault("company", branding.company)
        context.setdefault("logo_url", branding.logo_url)
        context.setdefault("brand_colour", branding.brand_colour)
    return HTMLResponse(page(template, language, **context), status_code=status_code, headers=_PAGE_HEADERS)


def _limits(request: Request) -> PublicLimits:
    settings = survey_settings(request)
    return PublicLimits(
        misses_per_minute=settings.public_misses_per_minute,
        link_per_minute=settings.public_link_per_minute,
        client_per_minute=settings.public_rate_per_minute,
    )


def _client(request: Request) -> str:
    """The client address: the connection's, or what a trusted proxy says (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


async def _limited(request: Request, uow: UnitOfWork[SurveyRepository], token: str) -> HTMLResponse | None:
    """Guessing links and hammering one link get 429; a company behind one address does not.

    The buckets are rows every replica shares, checked and spent in one statement committed at
    once: a client spreading its guesses over the replicas gets no more than from one. A client
    that has missed too often is refused everything until its misses drain, not only further
    misses: a lookup that finds a link answers differently from one that does not."""
    link = token_hash(token) if looks_like_token(token) else None
    buckets = PublicBuckets.of(_limits(request), client_key(_client(request)), link)
    wait = await uow.repository.admit(
        [(key, bucket.interval, bucket.tolerance) for key, bucket in buckets.checked],
        [key for key, _ in buckets.taken],
        time.time(),
    )
    await uow.commit()
    if wait <= 0:
        return None
    PUBLIC_LIMITED.inc()
    response = _html("too_many.html", 429)
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


async def _not_found(request: Request, uow: UnitOfWork[SurveyRepository]) -> HTMLResponse:
    """Counted even past the limit (many guesses may be in flight at once), up to a minute's debt."""
    key, bucket = missed_bucket(_limits(request), client_key(_client(request)))
    await uow.repository.charge(key, bucket.interval, bucket.tolerance, time.time())
    await uow.commit()
    return _html("not_found.html", 404)


def _score_form(
    link: SurveyLink,
    token: str,
    *,
    status_code: int = 200,
    selected: int | None = None,
    problem: str | None = None,
    changing: bool = False,
) -> HTMLResponse:
    return _html(
        "survey.html",
        status_code,
        link,
        token=token,
        touchpoint=link.questions.touchpoint_label,
        selected=selected,
        problem=problem,
        max_comment_length=MAX_COMMENT_LENGTH,
        changing=changing,
    )


def _follow_up_form(
    link: SurveyLink,
    token: str,
    score: int,
    *,
    status_code: int = 200,
    problem: str | None = None,
    changing: bool = False,
    **answers: Any,
) -> HTMLResponse:
    values = {
        "comment": link.comment,
        "recommended": link.recommended,
        "csat": link.csat,
        "effort": link.effort,
        **answers,
    }
    return _html(
        "followup.html",
        status_code,
        link,
        token=token,
        score=score,
        # The "why?" is worded per NPS group.
        category=nps_category(score),
        questions=link.questions,
        problem=problem,
        max_comment_length=MAX_COMMENT_LENGTH,
        changing=changing,
        **values,
    )


def _grace(request: Request) -> timedelta:
    return timedelta(minutes=survey_settings(request).answer_grace_minutes)


async def _show(
    request: Request, uow: UnitOfWork[SurveyRepository], token: str, selected: int | None, *, clicked: bool
) -> HTMLResponse:
    if (limited := await _limited(request, uow, token)) is not None:
        return limited
    link = await handlers.find_link(uow, token)
    if link is None:
        return await _not_found(request, uow)
    now = datetime.now(UTC)
    # The funnel's "clicked": a GET of a score button. It records no score.
    if clicked and request.method == "GET" and await handlers.record_clicked(uow, link, now=now):
        await uow.commit()
    state = link.state(now)
    if state is AnswerState.ANSWERED:
        assert link.score is not None and link.responded_at is not None
        changing = now <= link.responded_at + _grace(request)
        if changing:
            return _score_form(
                link, token, selected=selected if selected is not None else link.score, changing=True
            )
        if now <= link.expires_at:
            return _follow_up_form(link, token, link.score)
        return _html("answered.html", link=link)
    if state is AnswerState.EXPIRED:
        return _html("expired.html", 410, link)
    return _score_form(link, token, selected=selected)


@public_router.get("/s/{token}", response_class=HTMLResponse)
@public_router.head("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
# With a trailing slash too, the same page: no redirect, which would echo the Host header.
@public_router.api_route(
    "/s/{token}/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
)
async def survey_page(request: Request, token: str, uow: UoW) -> HTMLResponse:
    """The survey page of one invitation: the 0 to 10 scale. Records nothing.

    Once answered: within the grace period the score can be changed here; after it, the follow-up
    questions can still be answered until the link expires. 404 for an unknown link, 410 once
    the survey has closed, 429 to a client that asked for too many unknown links, or when this
    link is asked for too often.
    """
    return await _show(request, uow, token, None, clicked=False)


@public_router.get("/s/{token}/{score}", response_class=HTMLResponse)
@public_router.head("/s/{token}/{score}", response_class=HTMLResponse, include_in_schema=False)
@public_router.api_route(
    "/s/{token}/{score}/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
)
async def survey_page_with_score(request: Request, token: str, score: str, uow: UoW) -> HTMLResponse:
    """Where the email's score buttons lead: the survey page with that score chosen. Records no
    score (mail scanners follow every link); the respondent confirms with the form. A GET counts
    as "clicked" in the funnel."""
    return await _show(request, uow, token, parse_score(score), clicked=True)


@public_router.post("/s/{token}", response_class=HTMLResponse)
async def answer_survey(
    request: Request,
    token: str,
    uow: UoW,
    score: Annotated[str | None, Form(description="0 to 10")] = None,
    comment: Annotated[
        str | None, Form(description=f"optional, at most {MAX_COMMENT_LENGTH} characters")
    ] = None,
) -> HTMLResponse:
    """Confirm the score (form-encoded `score`): it counts at once, as `survey.responded.v1`. A
    different score within the grace period replaces it (`survey.response_updated.v1`).

    200 with the follow-up questions; 409 once the answer is final; 422 naming the problem;
    404 for an unknown link; 410 once the survey has closed.
    """
    if (limited := await _limited(request, uow, token)) is not None:
        return limited
    link = await handlers.find_link(uow, token)
    if link is None:
        return await _not_found(request, uow)
    now = datetime.now(UTC)
    if link.state(now) is AnswerState.EXPIRED:
        return _html("expired.html", 410, link)
    try:
        answer = parse_answer(score, comment)
    except InvalidAnswer as invalid:
        return _score_form(link, token, status_code=422, selected=parse_score(score), problem=invalid.problem)
    result, link = await handlers.record_score(uow, link, answer.score, now=now, grace=_grace(request))
    if result == "final":
        return _html("answered.html", 409, link)
    if answer.comment is not None:
        # An older form, or a client posting both at once: the comment follows as an update.
        follow_up = parse_follow_up(answer.comment, None, None, None)
        link = await handlers.record_follow_up(uow, link, follow_up, now=now) or link
    await uow.commit()
    if result != "unchanged":
        RESPONSES.labels("score" if result == "recorded" else "score_replaced").inc()
        log.info(
            "survey.responded" if result == "recorded" else "survey.score_replaced",
            extra={
                "invitation_id": str(link.invitation_id),
                "tenant_id": str(link.tenant_id),
                "score": answer.score,
            },
        )
    return _follow_up_form(link, token, answer.score, changing=_grace(request) > timedelta(0))


@public_router.post("/s/{token}/more", response_class=HTMLResponse)
async def answer_follow_up(
    request: Request,
    token: str,
    uow: UoW,
    comment: Annotated[
        str | None, Form(description=f"the why, at most {MAX_COMMENT_LENGTH} characters")
    ] = None,
    recommended: Annotated[str | None, Form(description="yes or no")] = None,
    csat: Annotated[str | None, Form(description="1 to 5")] = None,
    effort: Annotated[str | None, Form(description="1 to 7")] = None,
) -> HTMLResponse:
    """The optional answers after the score; each submission replaces the previous ones and is
    announced as `survey.response_updated.v1`. 200 thank-you page; 409 before a score is given;
    422 naming the problem; 404 unknown link; 410 expired."""
    if (limited := await _limited(request, uow, token)) is not None:
        return limited
    link = await handlers.find_link(uow, token)
    if link is None:
        return await _not_found(request, uow)
    now = datetime.now(UTC)
    if now > link.expires_at:
        return _html("expired.html", 410, link)
    if link.score is None:
        return _score_form(link, token, status_code=409, problem=Problem.SCORE_MISSING)
    try:
        answers = parse_follow_up(comment, recommended, csat, effort)
    except InvalidAnswer as invalid:
        return _follow_up_form(
            link, token, link.score, status_code=422, problem=invalid.problem, comment=comment
        )
    if await handlers.record_follow_up(uow, link, answers, now=now) is None:
        return _html("answered.html", 409, link)
    await uow.commit()
    RESPONSES.labels("follow_up").inc()
    return _html("thanks.html", link=link)


@public_router.get("/o/{token}.gif", include_in_schema=False)
async def open_pixel(request: Request, token: str, uow: UoW, settings: SurveyConfig) -> Response:
    """The tracking pixel: "opened" in the funnel, where the tenant allows it, told apart from a
    machine's fetch (``machine`` in ``survey.opened.v1``). Never refused: the image proxies of
    Apple and the webmail providers fetch for many people from few addresses, and an open that
    is refused is an open lost. It answers the same for every token, so it tells a guesser nothing."""
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    link = await handlers.find_link(uow, token)
    if link is not None:
        now = datetime.now(UTC)
        opener = opened_by(
            user_agent=request.headers.get("user-agent"),
            client_address=_client(request),
            emailed_at=link.last_emailed_at,
            now=now,
            on_delivery=timedelta(seconds=settings.machine_open_seconds),
        )
        machine = opener is not OpenedBy.PERSON
        if await handlers.record_opened(uow, link, now=now, machine=machine):
            await uow.commit()
            OPENS.labels(opener.value).inc()
    return Response(_PIXEL, media_type="image/gif", headers=headers)


@public_router.get("/u/{token}", response_class=HTMLResponse)
@public_router.head("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
@public_router.api_route(
    "/u/{token}/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
)
async def unsubscribe_page(request: Request, token: str, uow: UoW) -> HTMLResponse:
    """Asks to confirm; a GET never unsubscribes (scanners follow links)."""
    if (limited := await _limited(request, uow, token)) is not None:
        return limited
    link = await handlers.find_link(uow, token)
    if link is None:
        return await _not_found(request, uow)
    if link.unsubscribed:
        return _html("unsubscribed.html", link=link)
    return _html("unsubscribe.html", link=link, token=token)


@public_router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str, uow: UoW) -> HTMLResponse:
    """Unsubscribe: the page's button, and RFC 8058 one-click (`List-Unsubscribe=One-Click`) from
    mail clients. The address gets no more surveys from this tenant; the trigger is told
    (`customer.unsubscribed.v1`). Works after the survey expired too."""
    if (limited := await _limited(request, uow, token)) is not None:
        return limited
    link = await handlers.find_link(uow, token)
    if link is None:
        return await _not_found(request, uow)
    if await handlers.unsubscribe(uow, link, now=datetime.now(UTC)):
        await uow.commit()
        log.info(
            "survey.unsubscribed",
            extra={"invitation_id": str(link.invitation_id), "tenant_id": str(link.tenant_id)},
        )
    return _html("unsubscribed.html", link=link)
