"""The survey's commands and event handlers. They load state, ask the domain, record the results
and the outgoing events in the unit of work, and return. They never commit.

One module a concern: ``requests`` (the trigger's survey requests), ``sending`` (claiming due
invitations and recording deliveries), ``answers`` (what the survey pages record), ``bounces``
(bounce reports), and ``emitting`` (the step events several of them record)."""

from services.survey.handlers.answers import (
    MACHINE_OPENS,
    ScoreResult,
    SurveyLink,
    find_link,
    load_settings,
    record_clicked,
    record_follow_up,
    record_opened,
    record_score,
    response_id_for,
    save_settings,
    unsubscribe,
)
from services.survey.handlers.bounces import BOUNCE_LOOKBACK, handle_bounces
from services.survey.handlers.requests import SENDER_JOB, handle_consumed, schedule_invitations
from services.survey.handlers.sending import (
    ClaimedInvitation,
    SurveyLook,
    claim_due,
    claim_reminders,
    look_for,
    questions_in,
    record_expired,
    record_outcomes,
    sent_event_id,
)

__all__ = [
    "BOUNCE_LOOKBACK",
    "MACHINE_OPENS",
    "SENDER_JOB",
    "ClaimedInvitation",
    "ScoreResult",
    "SurveyLink",
    "SurveyLook",
    "claim_due",
    "claim_reminders",
    "find_link",
    "handle_bounces",
    "handle_consumed",
    "load_settings",
    "look_for",
    "questions_in",
    "record_clicked",
    "record_expired",
    "record_follow_up",
    "record_opened",
    "record_outcomes",
    "record_score",
    "response_id_for",
    "save_settings",
    "schedule_invitations",
    "sent_event_id",
    "unsubscribe",
]
