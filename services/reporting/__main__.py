from libs.common.app import main
from services.reporting.config import ReportingSettings
from services.reporting.main import build

main(build, ReportingSettings)
