from libs.common.app import main
from services.alerting.config import AlertingSettings
from services.alerting.main import build

main(build, AlertingSettings)
