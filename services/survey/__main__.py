from libs.common.service import main
from services.survey.config import SurveySettings
from services.survey.main import build

main(build, SurveySettings)
