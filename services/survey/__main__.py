from libs.common.app import main
from services.survey.config import SurveySettings
from services.survey.main import build

main(build, SurveySettings)
