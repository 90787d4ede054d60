from libs.common.migrations import run_env
from services.alerting.models import Base

run_env(Base.metadata)
