"""The survey's settings refuse what would be unsafe or inconsistent in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.survey.config import SurveySettings

ADMIN = "k3J9-real-admin-token-from-a-vault-Zq81"
SECRET = "Vq3h0pR8-a-real-survey-token-secret-5mK2xw"
HASH_KEY = "Jc7w1-a-real-privacy-hash-key-from-a-vault-Pq0"


def test_the_dev_token_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="SURVEY_TOKEN_SECRET"):
        SurveySettings(nps_env="production", NPS_ADMIN_TOKEN=ADMIN)


@pytest.mark.parametrize("secret", ["change-me", "short-but-not-a-placeholder"])
def test_placeholder_or_short_token_secrets_are_refused_outside_development(secret: str) -> None:
    with pytest.raises(ValidationError, match="SURVEY_TOKEN_SECRET"):
        SurveySettings(nps_env="production", NPS_ADMIN_TOKEN=ADMIN, survey_token_secret=secret)


def test_a_real_secret_is_accepted_and_development_keeps_its_default() -> None:
    settings = SurveySettings(
        nps_env="production", NPS_ADMIN_TOKEN=ADMIN, survey_token_secret=SECRET, privacy_hash_key=HASH_KEY
    )
    assert settings.survey_token_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and HASH_KEY not in repr(settings)
    development = SurveySettings(nps_env="development")
    assert development.survey_token_secret.get_secret_value()
    assert development.http_port == 8002
    assert development.token_ttl_days == 30
    assert development.max_send_attempts == 8
    assert development.mail_domain == "nps.localhost"


@pytest.mark.parametrize("key", [None, "change-me", "short-but-not-a-placeholder"])
def test_the_dev_placeholder_or_short_privacy_hash_keys_are_refused_in_production(key: str | None) -> None:
    given: dict[str, object] = {
        "nps_env": "production",
        "NPS_ADMIN_TOKEN": ADMIN,
        "survey_token_secret": SECRET,
    }
    if key is not None:
        given["privacy_hash_key"] = key
    with pytest.raises(ValidationError, match="PRIVACY_HASH_KEY"):
        SurveySettings.model_validate(given)


def test_a_claimed_batch_must_finish_before_it_looks_abandoned() -> None:
    with pytest.raises(ValidationError, match="SENDING_TIMEOUT_SECONDS"):
        SurveySettings(
            send_batch_size=100, send_concurrency=10, smtp_timeout_seconds=20, sending_timeout_seconds=60
        )


def test_urls_and_sender_address_are_checked() -> None:
    assert SurveySettings(survey_public_url="https://survey.example.com/").survey_public_url == (
        "https://survey.example.com"
    )
    with pytest.raises(ValidationError, match="SURVEY_PUBLIC_URL"):
        SurveySettings(survey_public_url="survey.example.com")
    with pytest.raises(ValidationError, match="MAIL_FROM"):
        SurveySettings(mail_from="Survey team")


def test_an_unusable_smtp_url_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="SMTP_URL"):
        SurveySettings(smtp_url="mail.example.com:25")
