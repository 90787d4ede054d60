from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

from pydantic import Field, field_validator, model_validator

from libs.common.config import ServiceSettings


class AlertingSettings(ServiceSettings):
    http_port: int = Field(default=8004, ge=1, le=65535)
    sla_check_seconds: float = Field(default=30, gt=0)
    #: Development and tests only: post chat messages to private addresses (a local receiver). The
    #: API refuses such addresses whatever this says; it is refused outside development.
    outbound_allow_private: bool = False
    #: How often it is looked whether a tenant's digest hour has come.
    digest_check_seconds: float = Field(default=300, gt=0)
    notify_poll_seconds: float = Field(default=0.5, gt=0)
    notify_batch_size: int = Field(default=20, ge=1, le=1000)
    #: How long a claimed batch of emails is left to the notifier that claimed it: after a crash, how
    #: long its batch waits to be sent again. Unset: longer than the batch can take even if every
    #: message waits out the SMTP timeout.
    notify_lease_seconds: float | None = Field(default=None, gt=0)
    #: The case-opened email waits this long after the score, so that the "why" the person adds on
    #: the next page goes with it (the email is rewritten when it arrives). 0 sends at once.
    notify_delay_seconds: float = Field(default=120, ge=0, le=24 * 3600)
    #: Outbound webhooks: how many deliveries one cycle of the sender posts (concurrently), and
    #: how long a claimed delivery is left to the sender that claimed it (after a crash, how long it
    #: waits to be sent again: longer than one attempt's timeout).
    webhook_batch_size: int = Field(default=50, ge=1, le=500)
    webhook_lease_seconds: float = Field(default=30, ge=11)
    mail_from: str = "NPS Alerts <alerts@nps.localhost>"
    #: How long a person stays signed in to the case desk and the report after following a link.
    session_hours: float = Field(default=12, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _private_outbound_only_in_development(self) -> AlertingSettings:
        if self.outbound_allow_private and self.nps_env == "production":
            raise ValueError("OUTBOUND_ALLOW_PRIVATE must not be set in production: it would allow SSRF")
        return self

    @field_validator("mail_from")
    @classmethod
    def _mail_from_has_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("MAIL_FROM must hold an address, e.g. 'NPS Alerts <alerts@example.com>'")
        return value

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.session_hours)
