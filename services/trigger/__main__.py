from libs.common.app import main
from services.trigger.config import TriggerSettings
from services.trigger.main import build

main(build, TriggerSettings)
