"""Every query about webhook endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger.webhooks.models import WebhookEndpoint


async def insert_endpoint(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(WebhookEndpoint).values(**row))


async def active_endpoint(session: AsyncSession, endpoint_id: str, platform: str) -> WebhookEndpoint | None:
    """The endpoint a delivery is addressed to, unless it is revoked or is another platform's."""
    return await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.platform == platform,
            WebhookEndpoint.revoked_at.is_(None),
        )
    )


async def active_endpoints(session: AsyncSession, tenant_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.revoked_at.is_(None))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return result.all()


async def revoke_endpoint(
    session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: str, now: datetime
) -> bool:
    result = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.tenant_id == tenant_id,
            WebhookEndpoint.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .returning(WebhookEndpoint.id)
    )
    return result.first() is not None
