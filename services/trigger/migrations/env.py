from libs.common.migrations import run_env
from services.trigger.models import Base

run_env(Base.metadata)
