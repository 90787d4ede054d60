"""The alerting service's event handlers and commands. They load state, ask the domain, record the
changes, the outgoing events and the emails to send in the unit of work, and return. They never
commit, except :func:`deliver_notifications`, which talks to the mail server and so owns its short
transactions, holding none while it sends."""

from services.alerting.handlers.answers import record_answer, record_answers
from services.alerting.handlers.cases import CaseNotFound, update_case
from services.alerting.handlers.common import API_ACTOR, Actor, case_id_for
from services.alerting.handlers.desk import NotInTenant, add_note, assign, log_contact, reopen, resolve
from services.alerting.handlers.notifications import DEFAULT_LEASE, Mailer, deliver_notifications
from services.alerting.handlers.sla import BREACH_BATCH, refresh_open_cases, run_clock

__all__ = [
    "API_ACTOR",
    "BREACH_BATCH",
    "DEFAULT_LEASE",
    "Actor",
    "CaseNotFound",
    "Mailer",
    "NotInTenant",
    "add_note",
    "assign",
    "case_id_for",
    "deliver_notifications",
    "log_contact",
    "record_answer",
    "record_answers",
    "refresh_open_cases",
    "reopen",
    "resolve",
    "run_clock",
    "update_case",
]
