"""Every Kafka topic the platform uses, with its partition count.

Keys are the customer (or aggregate) id so that one customer's events stay in order.
"""

from __future__ import annotations

PURCHASES = "nps.purchases"
TICKETS = "nps.tickets"
CUSTOMERS = "nps.customers"
SURVEY_REQUESTS = "nps.survey-requests"
SURVEY_EVENTS = "nps.survey-events"
SCORES = "nps.scores"
FOLLOWUPS = "nps.followups"
TENANTS = "nps.tenants"
#: Purchases the trigger added to its ledger, for reporting's repurchase rate.
PURCHASES_RECORDED = "nps.purchases-recorded"
#: Right-to-erasure: the trigger's requests to every service, and each service's completion.
ERASURES = "nps.erasures"

DLQ_SUFFIX = ".dlq"


def dlq(topic: str) -> str:
    return topic + DLQ_SUFFIX


MAIN_TOPICS: dict[str, int] = {
    PURCHASES: 6,
    TICKETS: 6,
    CUSTOMERS: 6,
    SURVEY_REQUESTS: 6,
    SURVEY_EVENTS: 6,
    SCORES: 3,
    FOLLOWUPS: 3,
    PURCHASES_RECORDED: 6,
    ERASURES: 3,
    # One partition keeps tenant and key changes in the order they were made.
    TENANTS: 1,
}

ALL_TOPICS: dict[str, int] = {**MAIN_TOPICS, **{dlq(name): 1 for name in MAIN_TOPICS}}
