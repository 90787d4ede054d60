"""The tenant's survey settings: the look and habits of its surveys, and each touchpoint's questions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from libs.common.deps import Tenant, UoW
from services.survey import handlers
from services.survey.schemas import SurveySettingsIn, TouchpointSettingsIn

# Listed with the invitations in the OpenAPI document, as they always were.
settings_router = APIRouter(tags=["invitations"])


TouchpointName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="the touchpoint")]


@settings_router.put("/v1/survey-settings")
async def put_survey_settings(body: SurveySettingsIn, tenant: Tenant, uow: UoW) -> SurveySettingsIn:
    """The tenant's survey look and habits: sender name, reply-to, logo, brand colour, default
    language, one reminder after N days (or none), sending rate a minute, open tracking."""
    await handlers.save_settings(
        uow, tenant.tenant_id, "", body.model_dump(mode="json"), now=datetime.now(UTC)
    )
    await uow.commit()
    return body


@settings_router.get("/v1/survey-settings")
async def get_survey_settings(tenant: Tenant, uow: UoW) -> SurveySettingsIn:
    return SurveySettingsIn.model_validate(await handlers.load_settings(uow, tenant.tenant_id, "") or {})


@settings_router.put("/v1/survey-settings/touchpoints/{name}")
async def put_touchpoint_settings(
    name: TouchpointName, body: TouchpointSettingsIn, tenant: Tenant, uow: UoW
) -> TouchpointSettingsIn:
    """How the question names this touchpoint, per language, and which follow-up questions follow
    the score (recommended in the last 12 months, CSAT 1-5, effort 1-7)."""
    await handlers.save_settings(
        uow, tenant.tenant_id, name, body.model_dump(mode="json"), now=datetime.now(UTC)
    )
    await uow.commit()
    return body


@settings_router.get("/v1/survey-settings/touchpoints/{name}")
async def get_touchpoint_settings(name: TouchpointName, tenant: Tenant, uow: UoW) -> TouchpointSettingsIn:
    return TouchpointSettingsIn.model_validate(
        await handlers.load_settings(uow, tenant.tenant_id, name) or {}
    )
