"""What the survey's routes share beyond the common dependencies: its own settings, typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from libs.common.deps import settings_of
from services.survey.config import SurveySettings

#: The dependency itself, for the page helpers that are handed the request rather than a route's
#: parameters; routes take :data:`SurveyConfig`.
survey_settings = settings_of(SurveySettings)

SurveyConfig = Annotated[SurveySettings, Depends(survey_settings)]
