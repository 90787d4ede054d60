from __future__ import annotations

import pytest
from pydantic import ValidationError

from libs.common.config import ServiceSettings
from libs.common.logs import redact
from libs.common.tenancy import generate_api_key, hash_key, parse_key_id


def test_placeholder_admin_token_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="NPS_ADMIN_TOKEN is a placeholder"):
        ServiceSettings(nps_env="production", NPS_ADMIN_TOKEN="change-me")


def test_a_real_admin_token_is_accepted_in_production() -> None:
    settings = ServiceSettings(nps_env="production", NPS_ADMIN_TOKEN="k3J9-real-token-from-a-vault-Zq81")
    assert settings.admin_token.get_secret_value().startswith("k3J9")


def test_development_allows_the_default() -> None:
    assert ServiceSettings(nps_env="development").admin_token.get_secret_value()


def test_postgres_urls_are_switched_to_asyncpg() -> None:
    settings = ServiceSettings(database_url="postgres://u:p@db:5432/nps")
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/nps"


def test_api_keys_are_random_and_stored_as_a_hash() -> None:
    first, second = generate_api_key(), generate_api_key()
    assert first.secret != second.secret
    assert first.key_hash == hash_key(first.secret) and first.secret not in first.key_hash
    assert parse_key_id(first.secret) == first.key_id
    assert parse_key_id(first.secret + "x") is None


def test_logs_never_carry_emails_tokens_or_keys() -> None:
    key = generate_api_key().secret
    line = redact(f"sent to jane.doe+nps@example.co.uk via /s/AbCdEfGhIjKlMnOpQrStUvWxYz012345 with {key}")
    assert "jane.doe" not in line and "AbCdEfGh" not in line and key not in line
    assert "<email>" in line and "/s/<token>" in line and "<api-key>" in line


def test_the_cli_migrates_the_trigger_s_own_history() -> None:
    # The CLI names the path itself rather than importing the service's composition root.
    from services.trigger.cli import MIGRATIONS
    from services.trigger.config import TriggerSettings
    from services.trigger.main import build

    assert build(TriggerSettings(nps_env="development")).migrations == MIGRATIONS
