"""Behaviour events: batch ingestion, idempotent by event_id, fast enough for 20k events/s."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils.timezone import now

from customers.intake import MAX_BATCH, RowInvalid, clean_event
from customers.models import Customer, Event
from customers.segments import freshness
from customers.services.profiles import ensure_customers
from tenants.models import Tenant


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def resolve_customer_refs(*, tenant: Tenant, rows: dict[int, dict[str, Any]], result_rejected: list[dict[str, Any]]) -> dict[int, int]:
    """Customer id per row, from customer_id, customer_external_id (auto-created) or email."""
    ids = {r["customer_id"] for r in rows.values() if "customer_id" in r}
    external = {r["customer_external_id"] for r in rows.values() if "customer_external_id" in r and "customer_id" not in r}
    emails = {r["email"] for r in rows.values() if "email" in r and "customer_id" not in r and "customer_external_id" not in r}
    valid_ids = set(Customer.objects.for_tenant(tenant).active().filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
    by_external = ensure_customers(tenant=tenant, external_ids=external)
    by_email = dict(Customer.objects.for_tenant(tenant).active().filter(email__in=emails).exclude(email="").values_list("email", "pk")) if emails else {}
    resolved: dict[int, int] = {}
    for index, row in rows.items():
        if "customer_id" in row:
            customer_id = row["customer_id"] if row["customer_id"] in valid_ids else None
            reason = {"customer_id": ["No such customer."]}
        elif "customer_external_id" in row:
            customer_id = by_external.get(row["customer_external_id"])
            reason = {"customer_external_id": ["This person was erased; nothing is stored about them."]}
        else:
            customer_id = by_email.get(row["email"])
            reason = {"email": ["No customer with this email."]}
        if customer_id is None:
            result_rejected.append({"index": index, "errors": reason})
        else:
            resolved[index] = customer_id
    return resolved


@transaction.atomic
def ingest_events(*, tenant: Tenant, rows: list[Any], source: str = "api") -> IngestResult:
    """Store a batch of raw events. Invalid ones are rejected with reasons, repeats (same
    event_id, in this batch or stored before) are counted as duplicates and stored once."""
    if len(rows) > MAX_BATCH:
        raise RowInvalid({"events": [f"At most {MAX_BATCH} events per request."]})
    result = IngestResult()
    cleaned: dict[int, dict[str, Any]] = {}
    seen: set[str] = set()
    for index, raw in enumerate(rows):
        try:
            event = clean_event(raw)
        except RowInvalid as exc:
            result.rejected.append({"index": index, "errors": exc.errors})
            continue
        if event["event_id"] in seen:
            result.duplicates += 1
            continue
        seen.add(event["event_id"])
        cleaned[index] = event
    customer_ids = resolve_customer_refs(tenant=tenant, rows=cleaned, result_rejected=result.rejected)
    ready = [(cleaned[i], customer_ids[i]) for i in sorted(customer_ids)]
    inserted = _insert(tenant, ready, source)
    result.accepted = len(inserted)
    result.duplicates += len(ready) - len(inserted)
    _touch_seen(tenant, [(cid, e["occurred_at"]) for e, cid in ready if e["event_id"] in inserted])
    stored = [(e["type"], cid) for e, cid in ready if e["event_id"] in inserted]
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[cid for _t, cid in stored],
                                kinds={"seen", *(f"event:{t}" for t, _cid in stored)})
    result.rejected.sort(key=lambda r: r["index"])
    return result


def _insert(tenant: Tenant, ready: list[tuple[dict[str, Any], int]], source: str) -> set[str]:
    """Insert, skipping event ids already stored; returns the ids actually inserted."""
    if not ready:
        return set()
    received = now()
    if connection.vendor == "postgresql":
        return _copy_insert(tenant, ready, source, received)
    ids = [e["event_id"] for e, _cid in ready]
    stored = set(Event.objects.for_tenant(tenant).filter(event_id__in=ids).values_list("event_id", flat=True))
    fresh = [(e, cid) for e, cid in ready if e["event_id"] not in stored]
    Event.objects.bulk_create(
        [Event(tenant=tenant, customer_id=cid, type=e["type"], event_id=e["event_id"], properties=e["properties"],
               source=source, occurred_at=e["occurred_at"], received_at=received) for e, cid in fresh],
        ignore_conflicts=True,
    )
    return {e["event_id"] for e, _cid in fresh}


_STAGE_TABLE = "event_stage"


def _copy_insert(tenant: Tenant, ready: list[tuple[dict[str, Any], int]], source: str, received: datetime) -> set[str]:
    """COPY the batch into a per-connection temporary table, then move it with one INSERT that
    skips stored ids. COPY avoids building a 500-row VALUES statement in Python."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(
        (cid, e["type"], e["event_id"], e["properties_json"], e["occurred_at"].isoformat()) for e, cid in ready
    )
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} (customer_id bigint, type varchar(64), event_id varchar(128), "
            "properties jsonb, occurred_at timestamptz) ON COMMIT DELETE ROWS"
        )
        cursor.cursor.copy_expert(f"COPY {_STAGE_TABLE} FROM STDIN WITH (FORMAT csv)", buffer)
        cursor.execute(
            f"INSERT INTO customers_event (tenant_id, customer_id, type, event_id, properties, source, occurred_at, received_at) "  # noqa: S608 - constant table name
            f"SELECT %s, customer_id, type, event_id, properties, %s, occurred_at, %s FROM {_STAGE_TABLE} "
            "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
            [tenant.pk, source, received],
        )
        inserted = {row[0] for row in cursor.fetchall()}
        # Emptied now too, not only at commit: a caller may run several batches in one transaction.
        cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
        return inserted


def _touch_seen(tenant: Tenant, seen: list[tuple[int, datetime]]) -> None:
    """Widen first/last seen of the customers in the batch: one UPDATE for the whole batch."""
    if not seen:
        return
    bounds: dict[int, tuple[datetime, datetime]] = {}
    for cid, moment in seen:
        low, high = bounds.get(cid, (moment, moment))
        bounds[cid] = (min(low, moment), max(high, moment))
    if connection.vendor == "postgresql":
        ordered = sorted(bounds.items())
        with connection.cursor() as cursor:
            # Only rows whose window really widens are updated (last seen to 5 minutes), so a
            # stream of events for active people does not rewrite their rows on every batch.
            # Ids are sorted: concurrent batches lock shared rows in the same order. Arrays
            # instead of a VALUES list: psycopg2 adapts a list in C, not row by row in Python.
            cursor.execute(
                "UPDATE customers_customer AS c SET "
                "first_seen_at = LEAST(COALESCE(c.first_seen_at, v.low), v.low), "
                "last_seen_at = GREATEST(COALESCE(c.last_seen_at, v.high), v.high) "
                "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, low, high) "
                "WHERE c.id = v.id AND c.tenant_id = %s "
                "AND (c.first_seen_at IS NULL OR c.first_seen_at > v.low "
                "OR c.last_seen_at IS NULL OR c.last_seen_at < v.high - interval '5 minutes')",
                [[cid for cid, _b in ordered], [b[0] for _c, b in ordered], [b[1] for _c, b in ordered], tenant.pk],
            )
        return
    for customer in Customer.objects.for_tenant(tenant).filter(pk__in=list(bounds)):
        low, high = bounds[customer.pk]
        customer.first_seen_at = min(customer.first_seen_at or low, low)
        customer.last_seen_at = max(customer.last_seen_at or high, high)
        customer.save(update_fields=["first_seen_at", "last_seen_at"])
