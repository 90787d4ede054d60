"""What a tenant may configure about its surveys, validated before it is stored.

Tenant-wide: the sender name and reply-to, a logo and a brand colour, the default language, one
reminder after N days (or none), the sending rate and whether opens are tracked. Per touchpoint:
how the touchpoint is named in the question, per language, and which follow-up questions follow
the score.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from libs.common.events import Email
from services.survey.domain.languages import LANGUAGES

Language = Annotated[str, AfterValidator(lambda v: _language(v))]
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _language(value: str) -> str:
    if value not in LANGUAGES:
        raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
    return value


def _one_line(value: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("must be a single line")
    return value.strip()


SenderName = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_one_line)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=80), AfterValidator(_one_line)]


class SurveySettingsIn(BaseModel):
    """``PUT /v1/survey-settings``: every field optional; omitted fields take the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender_name: SenderName | None = None
    reply_to: Email | None = None
    logo_url: Annotated[str, StringConstraints(max_length=500)] | None = None
    brand_colour: Annotated[str, StringConstraints(pattern=_COLOUR.pattern)] = "#2680c2"
    default_language: Language | None = None
    #: One reminder this many days after sending, to people who have not answered; None: no reminder.
    reminder_after_days: Annotated[int, Field(ge=1, le=29)] | None = None
    #: Emails a minute for this tenant, across its touchpoints.
    send_rate_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 600
    #: A 1x1 image that tells when the email was opened. Off where consent rules say so.
    open_tracking: bool = True

    @field_validator("logo_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (mail clients block other images)")
        return value


class TouchpointSettingsIn(BaseModel):
    """``PUT /v1/survey-settings/touchpoints/{name}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: How the question names the touchpoint, per language:
    #: {"en": "your recent order", "da": "din seneste ordre"}.
    label: dict[Language, Label] = Field(default_factory=dict)
    ask_recommended: bool = True
    ask_csat: bool = False
    ask_effort: bool = False


def tenant_settings(config: dict[str, Any] | None) -> SurveySettingsIn:
    return SurveySettingsIn.model_validate(config or {})


def touchpoint_settings(config: dict[str, Any] | None) -> TouchpointSettingsIn:
    return TouchpointSettingsIn.model_validate(config or {})
