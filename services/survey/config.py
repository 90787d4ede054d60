from __future__ import annotations

import math
from email.utils import parseaddr

from pydantic import Field, SecretStr, field_validator, model_validator

from libs.common.config import ServiceSettings
from libs.common.mail import SmtpTarget
from services.survey.domain.suppression import DEV_PRIVACY_HASH_KEY

#: An HMAC key shorter than this is guessable enough to matter; the dev default is deliberately shorter.
MIN_TOKEN_SECRET_LENGTH = 32


class SurveySettings(ServiceSettings):
    http_port: int = Field(default=8002, ge=1, le=65535)
    # Every survey link is derived from this key: changing it breaks every link already sent.
    survey_token_secret: SecretStr = SecretStr("dev-survey-token-secret")
    survey_public_url: str = "http://127.0.0.1:8002"
    #: The key of the suppression list's address hashes (services/survey/domain/suppression.py):
    #: changing it forgets every unsubscribe, bounce and complaint.
    privacy_hash_key: SecretStr = SecretStr(DEV_PRIVACY_HASH_KEY)
    token_ttl_days: int = Field(default=30, ge=1, le=365)
    mail_from: str = "NPS Survey <survey@nps.localhost>"
    send_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    send_batch_size: int = Field(default=20, ge=1, le=1000)
    send_concurrency: int = Field(default=10, ge=1, le=100)
    smtp_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    sending_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_send_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    #: A second score within this many minutes of the first replaces it; after that it is final.
    answer_grace_minutes: int = Field(default=60, ge=0, le=24 * 60)
    #: The public pages (/s, /u) answer 429 past any of these, each a rate a minute whose whole
    #: minute may come at once (see domain.ratelimit.PublicLimits for why these defaults). The
    #: pixel (/o) is never refused. A client address is the proxy's unless FORWARDED_ALLOW_IPS
    #: trusts it.
    #: Requests per client address: high, for a company of hundreds behind one NAT.
    public_rate_per_minute: int = Field(default=3000, ge=1, le=1_000_000)
    #: Requests per client address for links that do not exist (guessing).
    public_misses_per_minute: int = Field(default=10, ge=1, le=1_000_000)
    #: Requests for one link, from anywhere (a mail scanner's GET and HEAD of every link fit).
    public_link_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    #: A pixel fetched this soon after the invitation or its reminder went out is a mail
    #: gateway's, counted as a machine open.
    machine_open_seconds: float = Field(default=10.0, ge=0, le=3600)
    #: How often the lifecycle loop looks for reminders due and invitations that expired.
    lifecycle_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: DKIM signing (all three, or none): the private key (PEM), the selector and the signing domain.
    dkim_private_key: SecretStr | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    #: Bearer token that bounce webhooks (provider events and forwarded DSN emails) must present.
    bounce_webhook_token: SecretStr | None = None

    @field_validator("survey_public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError(
                "SURVEY_PUBLIC_URL must be an http:// or https:// URL, e.g. https://survey.example"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _usable_smtp_url(cls, value: str) -> str:
        SmtpTarget.from_url(value)
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from_has_domain(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address or not address.rsplit("@", 1)[1]:
            raise ValueError(
                "MAIL_FROM must hold an address with a domain, e.g. 'Survey <survey@example.com>'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SurveySettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("RETRY_MAX_SECONDS must not be smaller than RETRY_BASE_SECONDS")
        # A claimed batch that is still being sent must not look abandoned to another replica, or the
        # same people get the email twice.
        rounds = math.ceil(self.send_batch_size / self.send_concurrency)
        if rounds * self.smtp_timeout_seconds >= self.sending_timeout_seconds:
            raise ValueError(
                "SENDING_TIMEOUT_SECONDS must exceed ceil(SEND_BATCH_SIZE / SEND_CONCURRENCY) * "
                f"SMTP_TIMEOUT_SECONDS ({rounds} * {self.smtp_timeout_seconds:g} s)"
            )
        if len({self.dkim_private_key is None, self.dkim_selector is None, self.dkim_domain is None}) > 1:
            raise ValueError("DKIM_PRIVATE_KEY, DKIM_SELECTOR and DKIM_DOMAIN are set together or not at all")
        secret = self.survey_token_secret.get_secret_value()
        if self.nps_env != "development" and len(secret) < MIN_TOKEN_SECRET_LENGTH:
            raise ValueError(
                f"SURVEY_TOKEN_SECRET must be at least {MIN_TOKEN_SECRET_LENGTH} characters "
                f"(NPS_ENV={self.nps_env}); e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        # Production only: the default's hashes are as guessable as plain SHA-256 ones.
        if (
            self.nps_env == "production"
            and len(self.privacy_hash_key.get_secret_value()) < MIN_TOKEN_SECRET_LENGTH
        ):
            raise ValueError(
                f"PRIVACY_HASH_KEY must be at least {MIN_TOKEN_SECRET_LENGTH} characters "
                "(NPS_ENV=production); "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return self

    @property
    def mail_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rsplit("@", 1)[1]

    def secret_values(self) -> dict[str, str]:
        values = {
            **super().secret_values(),
            "survey_token_secret": self.survey_token_secret.get_secret_value(),
            "privacy_hash_key": self.privacy_hash_key.get_secret_value(),
        }
        if self.bounce_webhook_token is not None:
            values["bounce_webhook_token"] = self.bounce_webhook_token.get_secret_value()
        return values
