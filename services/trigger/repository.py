"""Every query the trigger makes, as one object over a unit of work's session.

Hot-path queries take a whole batch: one statement per batch. Reads return typed rows (the
models, or the small named tuples below for projections); writes take typed records, which the
methods turn into statements.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple, cast

from sqlalchemy import (
    BindParameter,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.db import copy_rows
from libs.common.privacy import (
    DEV_PRIVACY_HASH_KEY,
    SECTION_LIMIT,
    KeysetSection,
    Section,
    customer_pages,
)
from services.trigger.domain.consent import address_record
from services.trigger.domain.history import ContactRecord
from services.trigger.models import (
    COMMON,
    BigCommerceStore,
    CohortPick,
    Customer,
    CustomerTouchpoint,
    Decision,
    Erasure,
    OrderFetch,
    Policy,
    Purchase,
    QuotaUsage,
    SourceRecord,
    Touchpoint,
    WebhookEndpoint,
)

# --- What the queries read ----------------------------------------------------------------------


class ClaimedFetch(NamedTuple):
    """A queued order fetch, claimed, with the store credentials it is fetched with."""

    id: int
    tenant_id: uuid.UUID
    delivery_id: str
    order_id: str
    attempts: int
    store_hash: str
    access_token: str
    #: The receiver was revoked (``DELETE /v1/webhooks/{id}``) after this delivery was queued.
    revoked: bool = False


class StoredPolicy(NamedTuple):
    """A tenant's own rest-period settings, where it has set them."""

    rest_period_days: int
    rest_clock: str


class KnownCustomer(NamedTuple):
    """What intake needs to know of a customer it has seen before."""

    customer_id: str
    last_invited_at: datetime | None
    last_responded_at: datetime | None
    email: str | None
    name: str | None
    locale: str | None
    time_zone: str | None
    suppressed_at: datetime | None
    outstanding_invitation_id: uuid.UUID | None
    account_id: str | None = None
    account_owner_email: str | None = None
    attributes: dict[str, str] | None = None


class TouchpointClock(NamedTuple):
    """When a customer was last invited through one touchpoint."""

    customer_id: str
    touchpoint: str
    last_invited_at: datetime


class StoredSource(NamedTuple):
    """An order or ticket decided (or cancelled) before."""

    source_ref: str
    touchpoint: str
    customer_id: str
    invitation_id: uuid.UUID | None
    cancelled_at: datetime | None


class PendingInvitation(NamedTuple):
    source_ref: str
    touchpoint: str
    customer_id: str
    invitation_id: uuid.UUID


class Contact(NamedTuple):
    """A contact of one of the tenant's accounts, as the cohort draw sees it."""

    customer_id: str
    account_id: str
    email: str | None
    time_zone: str | None
    last_invited_at: datetime | None
    last_responded_at: datetime | None
    suppressed_at: datetime | None
    outstanding_invitation_id: uuid.UUID | None


class TenantRecord(NamedTuple):
    """A row of the tenant registry."""

    id: uuid.UUID
    name: str
    owner_email: str | None
    created_at: datetime
    display_name: str | None


class ExportedDecision(NamedTuple):
    """A decision as the decisions export writes it (field names are the table's columns)."""

    id: int
    decided_at: datetime
    event_id: str
    event_type: str
    customer_id: str
    touchpoint: str | None
    touchpoint_version: int | None
    outcome: str
    reason: str | None
    detail: str | None
    invitation_id: uuid.UUID | None
    rest_period_days: int
    rest_until: datetime | None
    send_at: datetime | None


class CustomerSpend(NamedTuple):
    """One customer's total in one currency, in its minor units."""

    customer_id: str
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class CohortState:
    current_round: int
    picked_in_round: set[str]
    picked_this_period: int


# --- What the writes take -----------------------------------------------------------------------


@dataclass(slots=True)
class CustomerUpdate:
    """What a batch learnt about one customer. ``None`` leaves a stored value as it is."""

    tenant_id: uuid.UUID
    customer_id: str
    last_event_at: datetime
    last_invited_at: datetime | None = None
    email: str | None = None
    name: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    account_id: str | None = None
    outstanding_invitation_id: uuid.UUID | None = None
    account_owner_email: str | None = None
    #: Replaces the stored set when given (``customer.upserted.v1`` sends the whole current one).
    attributes: dict[str, str] | None = None


@dataclass(slots=True)
class SourceUpdate:
    """An order or ticket decided for a touchpoint (or, with touchpoint ``*``, cancelled first)."""

    tenant_id: uuid.UUID
    source_ref: str
    touchpoint: str
    customer_id: str
    decided_at: datetime
    invitation_id: uuid.UUID | None = None
    send_at: datetime | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision as the ``decisions`` table keeps it."""

    tenant_id: uuid.UUID
    event_id: str
    event_type: str
    customer_id: str
    outcome: str
    rest_period_days: int
    decided_at: datetime
    touchpoint: str | None = None
    touchpoint_version: int | None = None
    reason: str | None = None
    invitation_id: uuid.UUID | None = None
    rest_until: datetime | None = None
    send_at: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """One order's amount as the purchases ledger keeps it."""

    tenant_id: uuid.UUID
    order_id: str
    customer_id: str
    amount_minor: int
    currency: str
    occurred_at: datetime


class ClosedInvitation(NamedTuple):
    """An invitation that is no longer outstanding (answered, expired, failed or cancelled)."""

    tenant_id: uuid.UUID
    customer_id: str
    invitation_id: uuid.UUID


class Answered(NamedTuple):
    tenant_id: uuid.UUID
    customer_id: str
    responded_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A customer unsubscribed (``suppressed_at`` set) or re-subscribed (all ``None``)."""

    customer_id: str
    suppressed_at: datetime | None = None
    reason: str | None = None
    email: str | None = None


_TENANTS = select(
    COMMON.tenants.c.id,
    COMMON.tenants.c.name,
    COMMON.tenants.c.owner_email,
    COMMON.tenants.c.created_at,
    COMMON.tenants.c.display_name,
)


def _ids(values: Iterable[str]) -> BindParameter[Sequence[str]]:
    ids: Sequence[str] = sorted(set(values))
    return bindparam("ids", ids, type_=ARRAY(Text))


def _lock_key(tenant_id: str, subject: str) -> int:
    digest = hashlib.blake2b(f"trigger:{tenant_id}:{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_SAVE_CUSTOMERS = text(
    "INSERT INTO trigger.customers (tenant_id, customer_id, last_invited_at, last_event_at, email, name, "
    "locale, time_zone, account_id, outstanding_invitation_id, account_owner_email, attributes) "
    "SELECT * FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), "
    "CAST(:invited AS timestamptz[]), CAST(:seen AS timestamptz[]), CAST(:emails AS text[]), "
    "CAST(:names AS text[]), CAST(:locales AS text[]), CAST(:zones AS text[]), CAST(:accounts AS text[]), "
    "CAST(:outstanding AS uuid[]), CAST(:owners AS text[]), CAST(:attributes AS jsonb[])) "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_event_at = excluded.last_event_at, "
    "last_invited_at = GREATEST(excluded.last_invited_at, customers.last_invited_at), "
    "email = coalesce(excluded.email, customers.email), name = coalesce(excluded.name, customers.name), "
    "locale = coalesce(excluded.locale, customers.locale), "
    "time_zone = coalesce(excluded.time_zone, customers.time_zone), "
    "account_id = coalesce(excluded.account_id, customers.account_id), "
    "outstanding_invitation_id = coalesce(excluded.outstanding_invitation_id, "
    "customers.outstanding_invitation_id), "
    "account_owner_email = coalesce(excluded.account_owner_email, customers.account_owner_email), "
    "attributes = coalesce(excluded.attributes, customers.attributes)"
)

_CLOSE_INVITATIONS = text(
    "UPDATE trigger.customers AS c SET outstanding_invitation_id = NULL "
    "FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), CAST(:invitations AS uuid[])) "
    "AS closed(tenant_id, customer_id, invitation_id) "
    "WHERE c.tenant_id = closed.tenant_id AND c.customer_id = closed.customer_id "
    "AND c.outstanding_invitation_id = closed.invitation_id"
)

_SET_CONSENT = text(
    "INSERT INTO trigger.customers "
    "(tenant_id, customer_id, last_event_at, email, suppressed_at, suppression_reason) "
    "VALUES (:tenant, :customer, :at, :email, :suppressed_at, :reason) "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET suppressed_at = excluded.suppressed_at, "
    "suppression_reason = excluded.suppression_reason, email = coalesce(customers.email, excluded.email)"
)

_SET_RESPONDED = text(
    "INSERT INTO trigger.customers (tenant_id, customer_id, last_event_at, last_responded_at) "
    "SELECT t, c, r, r FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), "
    "CAST(:at AS timestamptz[])) AS u(t, c, r) "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET "
    "last_responded_at = GREATEST(customers.last_responded_at, excluded.last_responded_at)"
)

_SAVE_TOUCHPOINT_CLOCKS = text(
    "INSERT INTO trigger.customer_touchpoints (tenant_id, customer_id, touchpoint, last_invited_at) "
    "SELECT * FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), "
    "CAST(:touchpoints AS text[]), CAST(:at AS timestamptz[])) "
    "ON CONFLICT (tenant_id, customer_id, touchpoint) DO UPDATE SET "
    "last_invited_at = GREATEST(customer_touchpoints.last_invited_at, excluded.last_invited_at)"
)

# A join on unnest probes the primary key once per reference. `source_ref = ANY(...)` let the
# planner scan every one of the tenant's source records through the customer index instead,
# which grows with the table (seen: 31 ms a batch at 10,000 rows).
_LOAD_SOURCES = text(
    "SELECT s.source_ref, s.touchpoint, s.customer_id, s.invitation_id, s.cancelled_at "
    "FROM unnest(CAST(:refs AS text[])) AS wanted(ref) "
    "JOIN trigger.source_records AS s ON s.tenant_id = :tenant AND s.source_ref = wanted.ref"
)

_SOURCE_COLUMNS = (
    "tenant_id",
    "source_ref",
    "touchpoint",
    "customer_id",
    "invitation_id",
    "send_at",
    "cancelled_at",
    "decided_at",
)
_SOURCE_CASTS = ("uuid", "text", "text", "text", "uuid", "timestamptz", "timestamptz", "timestamptz")
_SAVE_SOURCES = text(
    f"INSERT INTO trigger.source_records ({', '.join(_SOURCE_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_SOURCE_COLUMNS, _SOURCE_CASTS, strict=True))
    + ") ON CONFLICT (tenant_id, source_ref, touchpoint) DO UPDATE SET "
    "cancelled_at = coalesce(source_records.cancelled_at, excluded.cancelled_at), "
    "invitation_id = coalesce(source_records.invitation_id, excluded.invitation_id), "
    "send_at = coalesce(source_records.send_at, excluded.send_at)"
)

_PURCHASE_COLUMNS = ("tenant_id", "order_id", "customer_id", "amount_minor", "currency", "occurred_at")
_PURCHASE_CASTS = ("uuid", "text", "text", "bigint", "text", "timestamptz")
_RECORD_PURCHASES = text(
    f"INSERT INTO trigger.purchases ({', '.join(_PURCHASE_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_PURCHASE_COLUMNS, _PURCHASE_CASTS, strict=True))
    + ") ON CONFLICT (tenant_id, order_id) DO NOTHING RETURNING tenant_id, order_id"
)

# One probe of ix_purchases_customer per customer (the index holds currency and amount too).
_SPEND = text(
    "SELECT p.customer_id, p.currency, sum(p.amount_minor) AS amount_minor "
    "FROM unnest(CAST(:customers AS text[])) AS wanted(customer_id) "
    "JOIN trigger.purchases AS p ON p.tenant_id = :tenant AND p.customer_id = wanted.customer_id "
    "AND p.occurred_at >= :since GROUP BY p.customer_id, p.currency"
)

DECISION_COLUMNS = (
    "touchpoint_version",
    "send_at",
    "detail",
    "tenant_id",
    "event_id",
    "event_type",
    "customer_id",
    "touchpoint",
    "outcome",
    "reason",
    "invitation_id",
    "rest_until",
    "rest_period_days",
    "decided_at",
)

_UPSERT_CONTACT_HISTORY = text(
    "WITH written AS ("
    " INSERT INTO trigger.customers AS customers"
    " (tenant_id, customer_id, last_invited_at, last_event_at, email)"
    " SELECT CAST(:tenant AS uuid), batch.customer_id, batch.surveyed_at, batch.surveyed_at, batch.email"
    " FROM unnest(CAST(:customers AS text[]), CAST(:surveyed AS timestamptz[]), CAST(:emails AS text[]))"
    " AS batch(customer_id, surveyed_at, email)"
    " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
    " last_invited_at = GREATEST(customers.last_invited_at, excluded.last_invited_at),"
    " email = coalesce(customers.email, excluded.email)"
    # Rows that would not change are left alone: no dead tuple, and they count as unchanged.
    " WHERE customers.last_invited_at IS NULL"
    " OR customers.last_invited_at < excluded.last_invited_at"
    " OR (customers.email IS NULL AND excluded.email IS NOT NULL)"
    # xmax is 0 on a row this statement inserted, and set on one it updated.
    " RETURNING (customers.xmax = 0) AS created"
    ") SELECT count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated"
    " FROM written"
)


class TriggerRepository:
    """The trigger's queries over one transaction's session (``uow.repository``)."""

    def __init__(self, session: AsyncSession, *, privacy_hash_key: str = DEV_PRIVACY_HASH_KEY) -> None:
        self.session = session
        # Unsubscribes kept by address are kept by its keyed hash (domain.consent); main passes the key.
        self._privacy_hash_key = privacy_hash_key

    # --- Privacy: a customer's data (export) ----------------------------------------------------

    def customer_sections(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, KeysetSection]:
        """What the trigger holds about one customer of one tenant, by kind: the customer record (its
        rest-period clock, contact details, attributes, unsubscribe), the per-touchpoint clocks, the
        decisions taken about them, the source records (orders and tickets decided, with the
        invitation each made) and the purchases recorded. Each is read down an index in pages."""
        return {
            "customer": KeysetSection(
                select(Customer.__table__).where(
                    Customer.tenant_id == tenant_id, Customer.customer_id == customer_id
                ),
                (Customer.customer_id,),
                omit=("account_owner_email",),
            ),
            "touchpoints": KeysetSection(
                select(CustomerTouchpoint.__table__).where(
                    CustomerTouchpoint.tenant_id == tenant_id, CustomerTouchpoint.customer_id == customer_id
                ),
                (CustomerTouchpoint.touchpoint,),
            ),
            "decisions": KeysetSection(
                select(Decision.__table__).where(
                    Decision.tenant_id == tenant_id, Decision.customer_id == customer_id
                ),
                (Decision.decided_at, Decision.id),
            ),
            "source_records": KeysetSection(
                select(SourceRecord.__table__).where(
                    SourceRecord.tenant_id == tenant_id, SourceRecord.customer_id == customer_id
                ),
                (SourceRecord.decided_at, SourceRecord.source_ref, SourceRecord.touchpoint),
            ),
            "purchases": KeysetSection(
                select(Purchase.__table__).where(
                    Purchase.tenant_id == tenant_id, Purchase.customer_id == customer_id
                ),
                (Purchase.occurred_at, Purchase.order_id),
            ),
        }

    async def customer_data(
        self,
        tenant_id: uuid.UUID,
        customer_id: str,
        *,
        section: str | None = None,
        after: str | None = None,
        limit: int = SECTION_LIMIT,
    ) -> dict[str, Section]:
        """A page of the trigger's sections (:meth:`customer_sections`), as every ``/data`` gives."""
        return await customer_pages(
            self.session,
            self.customer_sections(tenant_id, customer_id),
            section=section,
            after=after,
            limit=limit,
        )

    # --- Privacy: retention ---------------------------------------------------------------------

    async def tenant_retention(self, tenant_id: uuid.UUID) -> tuple[int | None, int | None]:
        """(comments months, invitations months) of a tenant; None keeps that kind of data."""
        table = COMMON.tenants
        row = (
            await self.session.execute(
                select(table.c.retention_comments_months, table.c.retention_invitations_months).where(
                    table.c.id == tenant_id
                )
            )
        ).first()
        return (None, None) if row is None else (row[0], row[1])

    async def set_tenant_retention(
        self, tenant_id: uuid.UUID, comments_months: int | None, invitations_months: int | None
    ) -> None:
        table = COMMON.tenants
        await self.session.execute(
            update(table)
            .where(table.c.id == tenant_id)
            .values(
                retention_comments_months=comments_months, retention_invitations_months=invitations_months
            )
        )

    # --- Erasure --------------------------------------------------------------------------------

    async def erase_customer(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, int]:
        """The customer's profile loses who they are (address, name, language, time zone, account,
        account owner, attributes) and keeps only the facts that protect them: when they were last
        asked (the rest period) and their unsubscribe. Their purchases leave the spend ledger.
        Decisions and source records stay: they name the customer only by the tenant's own id."""
        profile = await self.session.execute(
            update(Customer)
            .where(Customer.tenant_id == tenant_id, Customer.customer_id == customer_id)
            .values(
                email=None,
                name=None,
                locale=None,
                time_zone=None,
                account_id=None,
                account_owner_email=None,
                attributes=None,
            )
        )
        purchases = await self.session.execute(
            delete(Purchase).where(Purchase.tenant_id == tenant_id, Purchase.customer_id == customer_id)
        )
        return {
            "customers": int(getattr(profile, "rowcount", 0) or 0),
            "purchases": int(getattr(purchases, "rowcount", 0) or 0),
        }

    async def add_erasure(self, erasure: Erasure) -> None:
        self.session.add(erasure)
        await self.session.flush()

    async def erasure(self, tenant_id: uuid.UUID, erasure_id: uuid.UUID) -> Erasure | None:
        return await self.session.scalar(
            select(Erasure).where(Erasure.tenant_id == tenant_id, Erasure.id == erasure_id)
        )

    async def erasures_for_update(self, erasure_ids: Sequence[uuid.UUID]) -> list[Erasure]:
        if not erasure_ids:
            return []
        rows = await self.session.scalars(
            select(Erasure)
            .where(Erasure.id.in_(sorted(set(erasure_ids))))
            .order_by(Erasure.id)
            .with_for_update()
        )
        return list(rows)

    async def erased_until(self, tenant_id: uuid.UUID, customer_keys: Iterable[str]) -> dict[str, datetime]:
        """The latest erasure of each of these customers (keyed hashes) that has one."""
        wanted = sorted(set(customer_keys))
        if not wanted:
            return {}
        rows = await self.session.execute(
            select(Erasure.customer_key, func.max(Erasure.requested_at))
            .where(Erasure.tenant_id == tenant_id, Erasure.customer_key.in_(wanted))
            .group_by(Erasure.customer_key)
        )
        return {key: at for key, at in rows.tuples()}

    # --- Policies -------------------------------------------------------------------------------

    async def policy(self, tenant_id: uuid.UUID) -> StoredPolicy | None:
        row = (
            await self.session.execute(
                select(Policy.rest_period_days, Policy.rest_clock).where(Policy.tenant_id == tenant_id)
            )
        ).first()
        return None if row is None else StoredPolicy(row.rest_period_days, row.rest_clock)

    async def set_rest_period(self, tenant_id: uuid.UUID, days: int, clock: str | None = None) -> None:
        values: dict[str, int | str] = {"rest_period_days": days}
        if clock is not None:
            values["rest_clock"] = clock
        statement = pg_insert(Policy).values(tenant_id=tenant_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[Policy.tenant_id], set_=values)
        )

    # --- Customers ------------------------------------------------------------------------------

    async def lock_customers(self, subjects: Iterable[tuple[str, str]]) -> None:
        """Serialise decisions per (tenant, customer) until this transaction ends: a concurrent
        request, webhook or consumer batch for the same customer waits here, then loads the state
        this one committed. One statement per batch; keys in ascending order, so two batches that
        share customers take them in the same order and cannot deadlock."""
        keys = sorted({_lock_key(tenant, subject) for tenant, subject in subjects})
        if keys:
            await self.session.execute(
                text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                {"keys": keys},
            )

    async def load_customers(self, tenant_id: uuid.UUID, customer_ids: Iterable[str]) -> list[KnownCustomer]:
        rows = await self.session.execute(
            select(
                Customer.customer_id,
                Customer.last_invited_at,
                Customer.last_responded_at,
                Customer.email,
                Customer.name,
                Customer.locale,
                Customer.time_zone,
                Customer.suppressed_at,
                Customer.outstanding_invitation_id,
                Customer.account_id,
                Customer.account_owner_email,
                Customer.attributes,
            ).where(Customer.tenant_id == tenant_id, Customer.customer_id == any_(_ids(customer_ids)))
        )
        return [KnownCustomer(*row) for row in rows]

    async def save_customers(self, customers: Sequence[CustomerUpdate]) -> None:
        """Upsert what a batch learnt about customers. Clocks only move forward; a missing detail
        never erases a known one; a new invitation becomes the outstanding one. Arrays through
        unnest(): one statement whatever the batch size."""
        if not customers:
            return
        await self.session.execute(
            _SAVE_CUSTOMERS,
            {
                "tenants": [c.tenant_id for c in customers],
                "customers": [c.customer_id for c in customers],
                "invited": [c.last_invited_at for c in customers],
                "seen": [c.last_event_at for c in customers],
                "emails": [c.email for c in customers],
                "names": [c.name for c in customers],
                "locales": [c.locale for c in customers],
                "zones": [c.time_zone for c in customers],
                "accounts": [c.account_id for c in customers],
                "outstanding": [c.outstanding_invitation_id for c in customers],
                "owners": [c.account_owner_email for c in customers],
                # JSON text: asyncpg's jsonb codec takes a str.
                "attributes": [None if c.attributes is None else json.dumps(c.attributes) for c in customers],
            },
        )

    async def close_invitations(self, closed: Sequence[ClosedInvitation]) -> None:
        """An invitation was answered, expired, failed or cancelled: it is no longer outstanding.
        Only the invitation named is closed; a later one stays outstanding."""
        if not closed:
            return
        await self.session.execute(
            _CLOSE_INVITATIONS,
            {
                "tenants": [c.tenant_id for c in closed],
                "customers": [c.customer_id for c in closed],
                "invitations": [c.invitation_id for c in closed],
            },
        )

    async def set_consent(self, tenant_id: uuid.UUID, change: ConsentChange, at: datetime) -> None:
        await self.session.execute(
            _SET_CONSENT,
            {
                "tenant": tenant_id,
                "customer": change.customer_id,
                "at": at,
                "email": change.email,
                "suppressed_at": change.suppressed_at,
                "reason": change.reason,
            },
        )

    async def suppress_by_email(
        self, tenant_id: uuid.UUID, email: str, reason: str, at: datetime
    ) -> list[str]:
        rows = await self.session.scalars(
            update(Customer)
            .where(Customer.tenant_id == tenant_id, func.lower(Customer.email) == email.lower())
            .values(suppressed_at=at, suppression_reason=reason)
            .returning(Customer.customer_id)
        )
        return list(rows)

    async def set_responded(self, answers: Sequence[Answered]) -> None:
        if not answers:
            return
        await self.session.execute(
            _SET_RESPONDED,
            {
                "tenants": [a.tenant_id for a in answers],
                "customers": [a.customer_id for a in answers],
                "at": [a.responded_at for a in answers],
            },
        )

    async def suppressed_emails(self, tenant_id: uuid.UUID, emails: Iterable[str]) -> set[str]:
        wanted = {email.lower() for email in emails}
        if not wanted:
            return set()
        rows = await self.session.scalars(
            select(func.lower(Customer.email)).where(
                Customer.tenant_id == tenant_id,
                func.lower(Customer.email) == any_(bindparam("emails", sorted(wanted), type_=ARRAY(Text))),
                Customer.suppressed_at.is_not(None),
            )
        )
        # And the records kept by hash, which outlive the erasure of the customers: primary-key lookups.
        records = {address_record(self._privacy_hash_key, email): email for email in wanted}
        kept = await self.session.scalars(
            select(Customer.customer_id).where(
                Customer.tenant_id == tenant_id,
                Customer.customer_id.in_(sorted(records)),
                Customer.suppressed_at.is_not(None),
            )
        )
        return set(rows) | {records[record] for record in kept}

    async def customers_with_email(self, tenant_id: uuid.UUID, email: str) -> list[str]:
        rows = await self.session.scalars(
            select(Customer.customer_id).where(
                Customer.tenant_id == tenant_id, func.lower(Customer.email) == email.lower()
            )
        )
        return list(rows)

    async def upsert_contact_history(
        self, tenant_id: uuid.UUID, customers: Sequence[ContactRecord]
    ) -> tuple[int, int]:
        """An imported history batch, whose customer ids must be unique, in one statement; returns
        (created, updated).

        Sorted by customer id, so two imports running at once lock shared rows in the same order
        and cannot deadlock each other.
        """
        if not customers:
            return 0, 0
        ordered = sorted(customers, key=lambda record: record.customer_id)
        result = await self.session.execute(
            _UPSERT_CONTACT_HISTORY,
            {
                "tenant": tenant_id,
                "customers": [record.customer_id for record in ordered],
                "surveyed": [record.surveyed_at for record in ordered],
                "emails": [record.email for record in ordered],
            },
        )
        counts = result.one()
        return int(counts.created), int(counts.updated)

    # --- Touchpoint clocks, source records, quota -----------------------------------------------

    async def touchpoint_clocks(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str]
    ) -> list[TouchpointClock]:
        rows = await self.session.execute(
            select(
                CustomerTouchpoint.customer_id,
                CustomerTouchpoint.touchpoint,
                CustomerTouchpoint.last_invited_at,
            ).where(
                CustomerTouchpoint.tenant_id == tenant_id,
                CustomerTouchpoint.customer_id == any_(_ids(customer_ids)),
            )
        )
        return [TouchpointClock(*row) for row in rows]

    async def save_touchpoint_clocks(self, tenant_id: uuid.UUID, clocks: Sequence[TouchpointClock]) -> None:
        """Clocks only move forward."""
        if not clocks:
            return
        await self.session.execute(
            _SAVE_TOUCHPOINT_CLOCKS,
            {
                "tenants": [tenant_id] * len(clocks),
                "customers": [c.customer_id for c in clocks],
                "touchpoints": [c.touchpoint for c in clocks],
                "at": [c.last_invited_at for c in clocks],
            },
        )

    async def load_sources(self, tenant_id: uuid.UUID, refs: Iterable[str]) -> list[StoredSource]:
        rows = await self.session.execute(_LOAD_SOURCES, {"refs": sorted(set(refs)), "tenant": tenant_id})
        return [StoredSource(*row) for row in rows]

    async def pending_invitations(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str], since: datetime
    ) -> list[PendingInvitation]:
        """Invitations of these customers that may not have gone out yet (the survey service
        decides)."""
        rows = await self.session.execute(
            select(
                SourceRecord.source_ref,
                SourceRecord.touchpoint,
                SourceRecord.customer_id,
                SourceRecord.invitation_id,
            ).where(
                SourceRecord.tenant_id == tenant_id,
                SourceRecord.customer_id == any_(_ids(customer_ids)),
                SourceRecord.invitation_id.is_not(None),
                SourceRecord.cancelled_at.is_(None),
                SourceRecord.send_at >= since,
            )
        )
        return [
            PendingInvitation(source_ref, touchpoint, customer_id, invitation_id)
            for source_ref, touchpoint, customer_id, invitation_id in rows
            if invitation_id is not None
        ]

    async def save_sources(self, sources: Sequence[SourceUpdate]) -> None:
        """A cancellation, invitation or send time once recorded stays."""
        if not sources:
            return
        await self.session.execute(
            _SAVE_SOURCES, {c: [getattr(source, c) for source in sources] for c in _SOURCE_COLUMNS}
        )

    async def cancel_sources(self, tenant_id: uuid.UUID, refs: Sequence[str], at: datetime) -> None:
        if refs:
            await self.session.execute(
                update(SourceRecord)
                .where(
                    SourceRecord.tenant_id == tenant_id,
                    SourceRecord.source_ref == any_(_ids(refs)),
                    SourceRecord.cancelled_at.is_(None),
                )
                .values(cancelled_at=at)
            )

    async def quota_used(self, tenant_id: uuid.UUID, day: date) -> dict[str, int]:
        rows = await self.session.execute(
            select(QuotaUsage.touchpoint, QuotaUsage.invited).where(
                QuotaUsage.tenant_id == tenant_id, QuotaUsage.day == day
            )
        )
        return {row.touchpoint: row.invited for row in rows}

    async def add_quota_usage(self, tenant_id: uuid.UUID, day: date, used: Mapping[str, int]) -> None:
        for touchpoint, count in sorted(used.items()):
            statement = pg_insert(QuotaUsage).values(
                tenant_id=tenant_id, touchpoint=touchpoint, day=day, invited=count
            )
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[QuotaUsage.tenant_id, QuotaUsage.touchpoint, QuotaUsage.day],
                    set_={"invited": QuotaUsage.invited + statement.excluded.invited},
                )
            )

    # --- Touchpoints ----------------------------------------------------------------------------

    async def active_touchpoints(self, tenant_id: uuid.UUID) -> list[Touchpoint]:
        """The latest version of each of the tenant's touchpoints that is not retired."""
        newest = (
            select(Touchpoint.name, func.max(Touchpoint.version).label("version"))
            .where(Touchpoint.tenant_id == tenant_id)
            .group_by(Touchpoint.name)
            .subquery()
        )
        rows = await self.session.scalars(
            select(Touchpoint)
            .join(newest, (Touchpoint.name == newest.c.name) & (Touchpoint.version == newest.c.version))
            .where(Touchpoint.tenant_id == tenant_id, Touchpoint.retired_at.is_(None))
            .order_by(Touchpoint.name)
        )
        return list(rows)

    async def touchpoint_versions(self, tenant_id: uuid.UUID, name: str) -> list[Touchpoint]:
        rows = await self.session.scalars(
            select(Touchpoint)
            .where(Touchpoint.tenant_id == tenant_id, Touchpoint.name == name)
            .order_by(Touchpoint.version.desc())
        )
        return list(rows)

    async def add_touchpoint_version(
        self, tenant_id: uuid.UUID, name: str, config: dict[str, object], at: datetime
    ) -> int:
        # Serialise concurrent edits of one touchpoint: versions must not collide.
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"touchpoint:{tenant_id}:{name}"}
        )
        latest = await self.session.scalar(
            select(func.max(Touchpoint.version)).where(
                Touchpoint.tenant_id == tenant_id, Touchpoint.name == name
            )
        )
        version = int(latest or 0) + 1
        self.session.add(
            Touchpoint(tenant_id=tenant_id, name=name, version=version, config=config, created_at=at)
        )
        await self.session.flush()
        return version

    async def retire_touchpoint(self, tenant_id: uuid.UUID, name: str, at: datetime) -> bool:
        result = await self.session.execute(
            update(Touchpoint)
            .where(
                Touchpoint.tenant_id == tenant_id, Touchpoint.name == name, Touchpoint.retired_at.is_(None)
            )
            .values(retired_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- Decisions ------------------------------------------------------------------------------

    async def record_decisions(self, decisions: Sequence[DecisionRecord]) -> None:
        """Append decisions with COPY. Each event id was claimed once in this transaction, so a
        decision can never conflict with an earlier one."""
        if decisions:
            await copy_rows(
                self.session,
                cast(Table, Decision.__table__),
                DECISION_COLUMNS,
                [tuple(getattr(decision, c) for c in DECISION_COLUMNS) for decision in decisions],
            )

    async def decisions_for_customer(
        self, tenant_id: uuid.UUID, customer_id: str, limit: int
    ) -> list[Decision]:
        result = await self.session.scalars(
            select(Decision)
            .where(Decision.tenant_id == tenant_id, Decision.customer_id == customer_id)
            .order_by(Decision.decided_at.desc(), Decision.id.desc())
            .limit(limit)
        )
        return list(result)

    async def decisions_between(
        self,
        tenant_id: uuid.UUID,
        since: datetime,
        until: datetime,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[ExportedDecision]:
        """One keyset page of the tenant's decisions with ``since <= decided_at < until``, in
        (decided_at, id) order, after the key ``after`` (the last row of the previous page): each
        page one probe of ``ix_decisions_tenant_time``, however deep into the range."""
        query = select(*(getattr(Decision, name) for name in ExportedDecision._fields)).where(
            Decision.tenant_id == tenant_id, Decision.decided_at >= since, Decision.decided_at < until
        )
        if after is not None:
            query = query.where(tuple_(Decision.decided_at, Decision.id) > tuple_(*after))
        rows = await self.session.execute(query.order_by(Decision.decided_at, Decision.id).limit(limit))
        return [ExportedDecision(*row) for row in rows]

    # --- Purchases ------------------------------------------------------------------------------

    async def record_purchases(self, purchases: Sequence[PurchaseRecord]) -> set[tuple[uuid.UUID, str]]:
        """Add orders to the ledger, once per (tenant, order): a repeated order keeps the amount
        first recorded. One statement per batch; returns the (tenant, order) the ledger added."""
        if not purchases:
            return set()
        added = await self.session.execute(
            _RECORD_PURCHASES, {c: [getattr(p, c) for p in purchases] for c in _PURCHASE_COLUMNS}
        )
        return {(row.tenant_id, row.order_id) for row in added}

    async def spend(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str], since: datetime
    ) -> list[CustomerSpend]:
        """What each of these customers spent since ``since``, per currency: one grouped query."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return []
        rows = await self.session.execute(_SPEND, {"customers": wanted, "tenant": tenant_id, "since": since})
        return [CustomerSpend(row.customer_id, row.currency, int(row.amount_minor)) for row in rows]

    # --- The tenant registry --------------------------------------------------------------------

    async def known_tenants(self, tenant_ids: Sequence[str]) -> set[str]:
        valid = []
        for value in set(tenant_ids):
            try:
                valid.append(uuid.UUID(value))
            except ValueError:
                continue
        if not valid:
            return set()
        rows = await self.session.scalars(select(COMMON.tenants.c.id).where(COMMON.tenants.c.id.in_(valid)))
        return {str(tenant_id) for tenant_id in rows}

    async def tenant_by_name_or_id(self, name_or_id: str) -> TenantRecord | None:
        table = COMMON.tenants
        condition = table.c.name == name_or_id
        with contextlib.suppress(ValueError):
            condition = condition | (table.c.id == uuid.UUID(name_or_id))
        row = (await self.session.execute(_TENANTS.where(condition))).first()
        return None if row is None else TenantRecord(*row)

    async def list_tenants(self) -> list[TenantRecord]:
        rows = await self.session.execute(_TENANTS.order_by(COMMON.tenants.c.created_at))
        return [TenantRecord(*row) for row in rows]

    async def insert_tenant(self, tenant: TenantRecord) -> None:
        await self.session.execute(COMMON.tenants.insert().values(**tenant._asdict()))

    async def update_tenant(
        self, tenant_id: uuid.UUID, *, display_name: str | None, owner_email: str | None
    ) -> None:
        await self.session.execute(
            COMMON.tenants.update()
            .where(COMMON.tenants.c.id == tenant_id)
            .values(display_name=display_name, owner_email=owner_email)
        )

    async def insert_api_key(
        self, *, key_id: str, tenant_id: uuid.UUID, key_hash: str, created_at: datetime
    ) -> None:
        await self.session.execute(
            COMMON.api_keys.insert().values(
                key_id=key_id, tenant_id=tenant_id, key_hash=key_hash, created_at=created_at
            )
        )

    async def revoke_api_key(self, key_id: str, at: datetime) -> uuid.UUID | None:
        table = COMMON.api_keys
        tenant_id: uuid.UUID | None = await self.session.scalar(
            table.update()
            .where(table.c.key_id == key_id, table.c.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(table.c.tenant_id)
        )
        return tenant_id

    # --- Account cohorts ------------------------------------------------------------------------

    async def cohort_touchpoints(self) -> list[Touchpoint]:
        """Every tenant's current touchpoints that sample accounts on a schedule."""
        newest = (
            select(Touchpoint.tenant_id, Touchpoint.name, func.max(Touchpoint.version).label("version"))
            .group_by(Touchpoint.tenant_id, Touchpoint.name)
            .subquery()
        )
        rows = await self.session.scalars(
            select(Touchpoint)
            .join(
                newest,
                (Touchpoint.tenant_id == newest.c.tenant_id)
                & (Touchpoint.name == newest.c.name)
                & (Touchpoint.version == newest.c.version),
            )
            .where(
                Touchpoint.retired_at.is_(None), Touchpoint.config["sample"].has_key("accounts_per_period")
            )
        )
        return list(rows)

    async def lock_cohort(self, tenant_id: uuid.UUID, touchpoint: str) -> None:
        """Until the transaction ends: one replica draws a touchpoint's cohort at a time, and the
        next one reads the picks the first recorded, so a period is drawn once however many
        replicas run the job. A replica that dies mid-draw loses the lock with its connection."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"cohort:{tenant_id}:{touchpoint}"},
        )

    async def cohort_state(self, tenant_id: uuid.UUID, touchpoint: str, period: str) -> CohortState:
        where = (CohortPick.tenant_id == tenant_id, CohortPick.touchpoint == touchpoint)
        current = int(
            await self.session.scalar(select(func.coalesce(func.max(CohortPick.round), 0)).where(*where)) or 0
        )
        in_round = await self.session.scalars(
            select(CohortPick.account_id).where(*where, CohortPick.round == current)
        )
        this_period = await self.session.scalar(
            select(func.count()).where(*where, CohortPick.period == period)
        )
        return CohortState(current, set(in_round), int(this_period or 0))

    async def accounts(self, tenant_id: uuid.UUID) -> list[str]:
        rows = await self.session.scalars(
            select(Customer.account_id)
            .where(Customer.tenant_id == tenant_id, Customer.account_id.is_not(None))
            .distinct()
        )
        return [row for row in rows if row]

    async def contacts(self, tenant_id: uuid.UUID, account_ids: Iterable[str]) -> list[Contact]:
        rows = await self.session.execute(
            select(
                Customer.customer_id,
                Customer.account_id,
                Customer.email,
                Customer.time_zone,
                Customer.last_invited_at,
                Customer.last_responded_at,
                Customer.suppressed_at,
                Customer.outstanding_invitation_id,
            )
            .where(Customer.tenant_id == tenant_id, Customer.account_id == any_(_ids(account_ids)))
            .order_by(Customer.account_id, Customer.customer_id)
        )
        return [
            Contact(customer, account, email, zone, invited, responded, suppressed, outstanding)
            for customer, account, email, zone, invited, responded, suppressed, outstanding in rows
            if account is not None
        ]

    async def record_picks(
        self,
        tenant_id: uuid.UUID,
        touchpoint: str,
        period: str,
        picks: Sequence[tuple[int, str]],
        at: datetime,
    ) -> None:
        await self.session.execute(
            pg_insert(CohortPick).on_conflict_do_nothing(),
            [
                {
                    "tenant_id": tenant_id,
                    "touchpoint": touchpoint,
                    "round": number,
                    "account_id": account,
                    "period": period,
                    "picked_at": at,
                }
                for number, account in picks
            ],
        )

    # --- Webhook endpoints ----------------------------------------------------------------------

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self.session.execute(
            insert(WebhookEndpoint).values(
                id=endpoint.id,
                tenant_id=endpoint.tenant_id,
                platform=endpoint.platform,
                secret=endpoint.secret,
                mapping=endpoint.mapping,
                created_at=endpoint.created_at,
            )
        )

    async def active_endpoint(self, endpoint_id: str, platform: str) -> WebhookEndpoint | None:
        """The endpoint a delivery is addressed to, unless it is revoked or is another platform's."""
        return await self.session.scalar(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.platform == platform,
                WebhookEndpoint.revoked_at.is_(None),
            )
        )

    async def active_endpoints(self, tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
        result = await self.session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.revoked_at.is_(None))
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return list(result)

    async def revoke_endpoint(self, tenant_id: uuid.UUID, endpoint_id: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.tenant_id == tenant_id,
                WebhookEndpoint.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(WebhookEndpoint.id)
        )
        return result.first() is not None

    # --- Thin webhooks: stores and the order fetch queue -------------------------------------------

    async def insert_store(self, store: BigCommerceStore) -> None:
        await self.session.execute(
            insert(BigCommerceStore).values(
                endpoint_id=store.endpoint_id,
                tenant_id=store.tenant_id,
                store_hash=store.store_hash,
                access_token=store.access_token,
                created_at=store.created_at,
            )
        )

    async def store_hash_of(self, endpoint_id: str) -> str | None:
        return await self.session.scalar(
            select(BigCommerceStore.store_hash).where(BigCommerceStore.endpoint_id == endpoint_id)
        )

    async def queue_fetch(
        self,
        *,
        tenant_id: uuid.UUID,
        endpoint_id: str,
        platform: str,
        delivery_id: str,
        scope: str,
        order_id: str,
        now: datetime,
    ) -> bool:
        """Queue a delivery's order fetch; False when the delivery was queued before (a replay)."""
        result = await self.session.execute(
            pg_insert(OrderFetch)
            .values(
                tenant_id=tenant_id,
                endpoint_id=endpoint_id,
                platform=platform,
                delivery_id=delivery_id,
                scope=scope,
                order_id=order_id,
                state="queued",
                attempts=0,
                due_at=now,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "platform", "delivery_id"])
            .returning(OrderFetch.id)
        )
        return result.first() is not None

    async def claim_fetches(self, *, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedFetch]:
        """Due fetches, locked past other claimers (``SKIP LOCKED``) and leased until ``lease_until``:
        a claimer that dies leaves them to come back due then, never lost."""
        due = (
            select(OrderFetch.id)
            .where(OrderFetch.state == "queued", OrderFetch.due_at <= now)
            .order_by(OrderFetch.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claimed = (
            update(OrderFetch)
            .where(OrderFetch.id.in_(due))
            .values(due_at=lease_until)
            .returning(OrderFetch.id)
            .cte("claimed")
        )
        rows = await self.session.execute(
            select(
                OrderFetch.id,
                OrderFetch.tenant_id,
                OrderFetch.delivery_id,
                OrderFetch.order_id,
                OrderFetch.attempts,
                BigCommerceStore.store_hash,
                BigCommerceStore.access_token,
                WebhookEndpoint.revoked_at.is_not(None),
            )
            .join(claimed, claimed.c.id == OrderFetch.id)
            .join(BigCommerceStore, BigCommerceStore.endpoint_id == OrderFetch.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == OrderFetch.endpoint_id)
        )
        return [ClaimedFetch(*row) for row in rows]

    async def finish_fetch(
        self, fetch_id: int, *, state: str, attempts: int, reason: str | None, now: datetime
    ) -> None:
        await self.session.execute(
            update(OrderFetch)
            .where(OrderFetch.id == fetch_id)
            .values(state=state, attempts=attempts, reason=reason, finished_at=now)
        )

    async def retry_fetch(self, fetch_id: int, *, attempts: int, reason: str, due_at: datetime) -> None:
        await self.session.execute(
            update(OrderFetch)
            .where(OrderFetch.id == fetch_id)
            .values(attempts=attempts, reason=reason, due_at=due_at)
        )

    async def fetches_of(self, tenant_id: uuid.UUID, endpoint_id: str, limit: int) -> list[OrderFetch]:
        """A receiver's latest deliveries and what came of each, newest first."""
        result = await self.session.scalars(
            select(OrderFetch)
            .where(OrderFetch.tenant_id == tenant_id, OrderFetch.endpoint_id == endpoint_id)
            .order_by(OrderFetch.received_at.desc(), OrderFetch.id.desc())
            .limit(limit)
        )
        return list(result)

    async def fetch_queue(self, now: datetime) -> tuple[datetime | None, int]:
        """When the oldest due fetch became due, and how many are due."""
        row = (
            await self.session.execute(
                select(func.min(OrderFetch.due_at), func.count()).where(
                    OrderFetch.state == "queued", OrderFetch.due_at <= now
                )
            )
        ).one()
        return row[0], int(row[1])
