"""What the survey's routes need from the running service."""

from __future__ import annotations

from fastapi import Request

from libs.common.http import runtime_of
from services.survey.config import SurveySettings


def survey_settings(request: Request) -> SurveySettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, SurveySettings)
    return settings
