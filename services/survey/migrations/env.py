from libs.common.migrations import run_env
from services.survey.models import Base

run_env(Base.metadata)
