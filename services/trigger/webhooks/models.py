"""The webhook endpoints table, in the trigger's schema and metadata."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger.models import Base


class WebhookEndpoint(Base):
    """One configured webhook receiver. Its id is in the URL the platform posts to and names the
    tenant, because a webhook cannot carry our API key."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    platform: Mapped[str] = mapped_column(String(20))
    # Kept in clear on purpose: checking an HMAC needs the key itself, and a hash of it could not
    # sign anything. Read access to this table is read access to every tenant's webhook keys.
    secret: Mapped[str] = mapped_column(Text)
    #: Only for the generic platform: where the fields sit in the body, and how it is signed.
    mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_endpoints_tenant", "tenant_id", "created_at"),
        CheckConstraint(
            "platform IN ('shopify', 'woocommerce', 'zendesk', 'freshdesk', 'generic')",
            name="ck_webhook_endpoints_platform",
        ),
    )
