from libs.common.app import main
from services.scoring.config import ScoringSettings
from services.scoring.main import build

main(build, ScoringSettings)
