"""Bounce reports: a hard bounce or a complaint suppresses the address and tells the trigger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from libs.common.db import UnitOfWork
from libs.common.events import SurveyBounced
from services.survey.adapters.bounces import BounceKind, BounceReport
from services.survey.handlers.emitting import emit_hygiene, emit_step
from services.survey.rendering import invitation_id_from_message_id
from services.survey.repository import BouncedInvitation, SurveyRepository

#: How far back a bounce report naming only an address is matched to invitations sent to it.
BOUNCE_LOOKBACK = timedelta(days=14)


async def handle_bounces(
    uow: UnitOfWork[SurveyRepository], reports: Sequence[BounceReport], *, now: datetime
) -> dict[str, int]:
    """Provider bounce events and DSN emails. A hard bounce or a complaint suppresses the address in
    every tenant that emailed it recently and tells the trigger; a soft bounce changes nothing (the
    server will retry, and so would we). Repeated reports are harmless."""
    matched = await _matched_invitations(uow, reports, now)
    reason = {BounceKind.HARD: "hard_bounce", BounceKind.COMPLAINT: "complaint"}
    newly = await uow.repository.suppress(
        [(row.tenant_id, row.email, reason[kind], now) for row, kind in matched]
    )
    stamped = await uow.repository.mark_bounced([row.id for row, _ in matched], now)
    announced: set[tuple[uuid.UUID, str]] = set()
    await uow.repository.cancel_scheduled_to([(row.tenant_id, row.email) for row, _ in matched])
    for row, kind in matched:
        if row.id in stamped:
            emit_step(uow, SurveyBounced, row.id, row, now)
        pair = (row.tenant_id, row.email.lower())
        # Only the first report that suppresses an address reaches the trigger.
        if pair in newly and pair not in announced:
            announced.add(pair)
            hygiene: Literal["hard_bounce", "complaint"] = (
                "complaint" if kind is BounceKind.COMPLAINT else "hard_bounce"
            )
            emit_hygiene(uow, row.tenant_id, row.customer_id, row.email, hygiene, now)
    return {
        "reports": len(reports),
        "hard_bounces": sum(1 for r in reports if r.kind is BounceKind.HARD),
        "soft_bounces": sum(1 for r in reports if r.kind is BounceKind.SOFT),
        "complaints": sum(1 for r in reports if r.kind is BounceKind.COMPLAINT),
        "invitations_matched": len(matched),
    }


async def _matched_invitations(
    uow: UnitOfWork[SurveyRepository], reports: Sequence[BounceReport], now: datetime
) -> list[tuple[BouncedInvitation, BounceKind]]:
    """The invitations the lasting reports are about: by the message id our emails carry, or, for
    a report naming only an address, those sent to it recently."""
    lasting = [r for r in reports if r.kind in (BounceKind.HARD, BounceKind.COMPLAINT)]
    by_id = {
        invitation_id: report
        for report in lasting
        if (invitation_id := invitation_id_from_message_id(report.message_id)) is not None
    }
    by_address = [report for report in lasting if invitation_id_from_message_id(report.message_id) is None]
    rows = await uow.repository.invitations_for_bounces(
        list(by_id), [r.recipient for r in by_address], now - BOUNCE_LOOKBACK
    )
    kinds = {r.recipient.lower(): r.kind for r in by_address}
    matched: list[tuple[BouncedInvitation, BounceKind]] = []
    for row in rows:
        report = by_id.get(row.id)
        kind = report.kind if report is not None else kinds.get(row.email.lower())
        if kind is not None:
            matched.append((row, kind))
    return matched
