"""The trigger's commands and event handlers. They load state, ask the domain, record the results
and the outgoing events in the unit of work, and return. They never commit.

``intake`` decides incoming events, ``cohorts`` draws relationship surveys, ``tenants`` keeps the
registry and ``touchpoints`` their versions; the names the edges use are re-exported here."""

from services.trigger.handlers.cohorts import cohort_job, run_cohorts
from services.trigger.handlers.common import RelationshipDue, invitation_id_for, tenant_rules
from services.trigger.handlers.intake import (
    ACCEPTED_TYPES,
    CANCELLED_MARK,
    CLOSING_TYPES,
    DECISIONS,
    INTAKE_CONSUMER,
    SURVEYED_TYPES,
    IntakeOutcome,
    decide_intake,
    handle_intake,
    handle_intake_from_kafka,
    on_invitation_closed,
    on_survey_events,
    on_survey_responded,
)
from services.trigger.handlers.tenants import (
    KEEP,
    TenantExists,
    UnknownTenant,
    create_api_key,
    create_tenant,
    revoke_api_key,
    update_tenant,
)
from services.trigger.handlers.touchpoints import set_touchpoint

__all__ = [
    "ACCEPTED_TYPES",
    "CANCELLED_MARK",
    "CLOSING_TYPES",
    "DECISIONS",
    "INTAKE_CONSUMER",
    "KEEP",
    "SURVEYED_TYPES",
    "IntakeOutcome",
    "RelationshipDue",
    "TenantExists",
    "UnknownTenant",
    "cohort_job",
    "create_api_key",
    "create_tenant",
    "decide_intake",
    "handle_intake",
    "handle_intake_from_kafka",
    "invitation_id_for",
    "on_invitation_closed",
    "on_survey_events",
    "on_survey_responded",
    "revoke_api_key",
    "run_cohorts",
    "set_touchpoint",
    "tenant_rules",
    "update_tenant",
]
