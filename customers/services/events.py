"""Behaviour events: batch ingestion, idempotent by event_id, fast enough for 20k events/s."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils.timezone import now

from customers.intake import MAX_BATCH, RowInvalid, clean_event
from customers.models import Customer, Event
from customers.segments import freshness
from customers.services.profiles import Seen, ensure_customers, text_array
from tenants.models import Tenant

# last_seen_at moves only when it is this much behind: a stream of events for an active person
# does not rewrite their row on every batch.
LAST_SEEN_SLACK = timedelta(minutes=5)
SEEN_ROUND = 5000  # customers per transaction when widen_seen applies deferred bounds


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    customer_ids: set[int] = field(default_factory=set)  # customers with an event stored by this batch
    new_customers: int = 0  # bare profiles created for unknown customer_external_ids

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def resolve_customer_refs(*, tenant: Tenant, rows: dict[int, dict[str, Any]], result_rejected: list[dict[str, Any]],
                          seen: Seen | None = None, created: set[int] | None = None) -> dict[int, int]:
    """Customer id per row, from customer_id, customer_external_id (auto-created) or email.
    With `seen`, also the first/last seen of each of those customers (read by the same queries);
    with `created`, the ids of the profiles created for unknown external ids are added to it."""
    ids: set[int] = set()
    external: set[str] = set()
    emails: set[str] = set()
    for r in rows.values():
        if "customer_id" in r:
            ids.add(r["customer_id"])
        elif "customer_external_id" in r:
            external.add(r["customer_external_id"])
        else:
            emails.add(r["email"])
    customers = Customer.objects.for_tenant(tenant).active()
    window = ("first_seen_at", "last_seen_at") if seen is not None else ()
    valid_ids: set[int] = set()
    if ids:
        for pk, *bounds in customers.filter(pk__in=ids).values_list("pk", *window):
            valid_ids.add(pk)
            if seen is not None:
                seen[pk] = (bounds[0], bounds[1])
    by_external = ensure_customers(tenant=tenant, external_ids=external, seen=seen, created=created)
    by_email: dict[str, int] = {}
    if emails:
        for email, pk, first, last in _by_email(tenant, emails):
            by_email[email] = pk
            if seen is not None:
                seen[pk] = (first, last)
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


# Customer id -> (earliest, latest) occurred_at of events, to widen first/last seen with.
SeenBounds = dict[int, tuple[datetime, datetime]]


def merge_bounds(into: SeenBounds, cid: int, low: datetime, high: datetime) -> None:
    """Widen a customer's gathered bounds (or start them) with another earliest/latest pair."""
    known = into.get(cid)
    into[cid] = (low, high) if known is None else (min(low, known[0]), max(high, known[1]))


def _by_email(tenant: Tenant, emails: set[str]) -> list[tuple[str, int, datetime | None, datetime | None]]:
    """(email, id, first seen, last seen) of the active customers with these emails."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # One index probe per email (email <> '' matches the partial unique index), whatever the
            # statistics (on the tenant subquery, see the note above profiles.text_array).
            cursor.execute(
                "SELECT x.email, c.id, c.first_seen_at, c.last_seen_at FROM unnest(%s::text[]) AS x(email) CROSS JOIN LATERAL "
                "(SELECT id, first_seen_at, last_seen_at FROM customers_customer WHERE tenant_id = (SELECT %s::bigint) AND email = x.email "
                "AND email <> '' AND erased_at IS NULL LIMIT 1) AS c",
                [text_array(emails), tenant.pk],
            )
            return cursor.fetchall()
    return list(Customer.objects.for_tenant(tenant).active().filter(email__in=emails).exclude(email="")
                .values_list("email", "pk", "first_seen_at", "last_seen_at"))


@transaction.atomic
def ingest_events(*, tenant: Tenant, rows: list[Any], source: str = "api", defer_seen: SeenBounds | None = None,
                  limit: int = MAX_BATCH, precleaned: list[dict[str, Any] | RowInvalid] | None = None) -> IngestResult:
    """Store a batch of raw events. Invalid ones are rejected with reasons, repeats (same
    event_id, in this batch or stored before) are counted as duplicates and stored once.

    With `defer_seen` (bulk loads), customers' first/last seen are not widened now: the batch's
    bounds are merged into that dict, for `widen_seen` to apply once per customer later instead
    of once per batch. They then cover every event of the batch that is stored, new or repeated,
    so that re-running a load which stopped before its widening repairs it. `limit` is the batch
    size allowed (the API's by default; bulk loads write bigger chunks). `precleaned` is
    `clean_event`'s outcome for each row, in order (the event or its RowInvalid), when the caller
    has validated them already (imports do it on their reading thread, while this one writes)."""
    if len(rows) > limit:
        raise RowInvalid({"events": [f"At most {limit} events per request."]})
    result = IngestResult()
    reference = now()  # one clock reading for the batch: the default time and the "future" limit
    cleaned: dict[int, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    if precleaned is not None and len(precleaned) != len(rows):
        raise ValueError("precleaned must hold one outcome per row")
    # On PostgreSQL a batch whose events all name their customer by external id (the common shape)
    # is written by the staged statement, with no Python per event after cleaning.
    staged: list[StagedEvent] | None = [] if connection.vendor == "postgresql" else None
    for index, raw in enumerate(rows):
        try:
            outcome = clean_event(raw, reference=reference) if precleaned is None else precleaned[index]
            if isinstance(outcome, RowInvalid):
                raise outcome
            event = outcome
        except RowInvalid as exc:
            result.rejected.append({"index": index, "errors": exc.errors})
            continue
        if event["event_id"] in seen_ids:
            result.duplicates += 1
            continue
        seen_ids.add(event["event_id"])
        cleaned[index] = event
        if staged is not None:
            row = staged_event(event)
            if row is None:
                staged = None
            else:
                staged.append(row)
    if staged:
        return _ingest_staged_batch(tenant, result, list(cleaned), stage_events(staged), source, defer_seen)
    windows: Seen = {}
    created: set[int] = set()
    customer_ids = resolve_customer_refs(tenant=tenant, rows=cleaned, result_rejected=result.rejected, seen=windows, created=created)
    result.new_customers = len(created)
    ready = [(cleaned[i], customer_ids[i]) for i in sorted(customer_ids)]
    inserted = _insert(tenant, ready, source, reference)
    result.accepted = len(inserted)
    result.duplicates += len(ready) - len(inserted)
    stored = [(e, cid) for e, cid in ready if e["event_id"] in inserted]
    result.customer_ids = {cid for _e, cid in stored}
    if defer_seen is None:
        _touch_seen(tenant, [(cid, e["occurred_at"]) for e, cid in stored], windows)
    else:
        for cid, (low, high) in _widening(_bounds((cid, e["occurred_at"]) for e, cid in ready), windows).items():
            merge_bounds(defer_seen, cid, low, high)
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=result.customer_ids,
                                kinds={"seen", *(f"event:{t}" for t in {e["type"] for e, _cid in stored})})
    result.rejected.sort(key=lambda r: r["index"])
    return result


def _ingest_staged_batch(tenant: Tenant, result: IngestResult, indexes: Sequence[int], staged: StagedEvents, source: str,
                         defer_seen: SeenBounds | None) -> IngestResult:
    """The rest of ingest_events (and ingest_staged_events) for a batch of the common shape, staged
    (`indexes`: the batch position of each staged row). First/last seen are widened at once, or
    merged into `defer_seen`."""
    bounds: SeenBounds = {} if defer_seen is None else defer_seen
    written, types = _write_staged(tenant, staged, source, bounds)
    if defer_seen is None and bounds:
        _update_seen(tenant, bounds)  # only customers whose window widens came back
    result.accepted = written.accepted
    result.duplicates += written.duplicates
    result.new_customers = written.new_customers
    result.customer_ids = written.customer_ids
    result.rejected.extend({"index": indexes[r["index"]], "errors": r["errors"]} for r in written.rejected)
    result.rejected.sort(key=lambda r: r["index"])
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=result.customer_ids, kinds={"seen", *(f"event:{t}" for t in types)})
    return result


def _insert(tenant: Tenant, ready: list[tuple[dict[str, Any], int]], source: str, received: datetime) -> set[str]:
    """Insert, skipping event ids already stored; returns the ids actually inserted."""
    if not ready:
        return set()
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


def empty_stage_now() -> bool:
    """Whether a staging table must be emptied right after use: ON COMMIT DELETE ROWS empties it
    at commit, which is enough unless this transaction is nested in a caller's that may stage
    again before committing. (DELETE, not TRUNCATE: TRUNCATE gives the table a new file each time.)"""
    return len(connection.atomic_blocks) != 1 or not connection.commit_on_exit


def _copy_insert(tenant: Tenant, ready: list[tuple[dict[str, Any], int]], source: str, received: datetime) -> set[str]:
    """COPY the batch into a per-connection temporary table, then move it with one INSERT that
    skips stored ids. COPY avoids building a 500-row VALUES statement in Python."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
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
        if empty_stage_now():
            cursor.execute(f"DELETE FROM {_STAGE_TABLE}")  # noqa: S608 - constant table name
        return inserted


# Events of the common shape, staged: written with no Python per event -------------------------


StagedEvent = tuple[str, str, str, str, str]  # customer_external_id, type, event_id, properties (JSON), occurred_at (ISO)


def staged_event(event: dict[str, Any]) -> StagedEvent | None:
    """A cleaned event of the common shape (a customer_external_id, nothing else naming the
    customer) as the row the staged statement copies; None for other shapes. A bulk load calls it
    in its reading thread, so that the writing one never touches the events one by one."""
    if "customer_id" in event or "email" in event or "customer_external_id" not in event:
        return None
    return (event["customer_external_id"], event["type"], event["event_id"], event["properties_json"], event["occurred_at"].isoformat())


_LINE_STAGE = "event_line_stage"

# One statement per pass: the customers are looked up once per external id of the chunk (one index
# probe each, LATERAL as in profiles._ids_by_external_id), the first row of each event_id is
# inserted in file order, and the rows come back as one summary row (how many were inserted and
# resolved, the customers and types inserted if asked, the external ids not found) followed by
# the first/last seen bounds of the customers whose window they widen. The bounds cover every
# resolved row, new or already stored (re-widening from a stored event repairs a lost widening).
_STAGED_INSERT = f"""
WITH ids AS MATERIALIZED (
    SELECT x.ext, c.id, c.first_seen_at AS f, c.last_seen_at AS l
    FROM (SELECT DISTINCT ext FROM {_LINE_STAGE} WHERE %(only)s::text[] IS NULL OR ext = ANY(%(only)s::text[])) AS x
    CROSS JOIN LATERAL (SELECT id, first_seen_at, last_seen_at FROM customers_customer
                        WHERE tenant_id = (SELECT %(tenant)s::bigint) AND external_id = x.ext LIMIT 1) AS c
), resolved AS MATERIALIZED (
    SELECT DISTINCT ON (s.event_id) s.idx, i.id AS customer_id, i.f, i.l, s.type, s.event_id, s.properties, s.occurred_at
    FROM {_LINE_STAGE} AS s JOIN ids AS i ON i.ext = s.ext
    ORDER BY s.event_id, s.idx
), ins AS (
    INSERT INTO customers_event (tenant_id, customer_id, type, event_id, properties, source, occurred_at, received_at)
    SELECT %(tenant)s, customer_id, type, event_id, properties, %(source)s, occurred_at, %(received)s FROM resolved ORDER BY idx
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING customer_id, type
)
SELECT NULL::bigint, NULL::timestamptz, NULL::timestamptz, (SELECT count(*) FROM ins),
       CASE WHEN %(note)s THEN ARRAY(SELECT DISTINCT customer_id FROM ins) END,
       CASE WHEN %(note)s THEN ARRAY(SELECT DISTINCT type::text FROM ins) END,
       ARRAY(SELECT DISTINCT s.ext FROM {_LINE_STAGE} AS s
             WHERE (%(only)s::text[] IS NULL OR s.ext = ANY(%(only)s::text[])) AND NOT EXISTS (SELECT FROM ids WHERE ids.ext = s.ext))
UNION ALL
SELECT customer_id, min(occurred_at), max(occurred_at), NULL, NULL, NULL, NULL FROM resolved GROUP BY customer_id, f, l
HAVING f IS NULL OR f > min(occurred_at) OR l IS NULL OR l < max(occurred_at) - %(slack)s
"""  # noqa: S608 - constant table name


@dataclass
class StagedEvents:
    """A batch of staged events and the CSV that COPY reads them from (written by `stage_events`
    in the reading thread too)."""

    rows: list[StagedEvent]
    text: str


def stage_events(rows: list[StagedEvent]) -> StagedEvents:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return StagedEvents(rows, buffer.getvalue())


@transaction.atomic
def ingest_staged_events(*, tenant: Tenant, staged: StagedEvents, source: str, defer_seen: SeenBounds) -> IngestResult:
    """`ingest_events` with `defer_seen` for a bulk load's events of the common shape, given as
    `staged_event`s (see `stage_events`): the customers are resolved (bare profiles created for
    unknown ids, as there), the events inserted and the first/last seen bounds gathered by the
    database, with no Python per event here. Repeats (same event_id in the batch or stored) are
    duplicates; rejected rows, by index in `rows`, are those of erased people. PostgreSQL only."""
    return _ingest_staged_batch(tenant, IngestResult(), range(len(staged.rows)), staged, source, defer_seen)


def _write_staged(tenant: Tenant, staged: StagedEvents, source: str, seen: SeenBounds) -> tuple[IngestResult, set[str]]:
    """The staged batch written (in the caller's transaction), its first/last seen bounds merged
    into `seen`; what was done, and the types of the events stored."""
    result = IngestResult()
    types: set[str] = set()
    rows = staged.rows
    if not rows:
        return result, types
    note = not freshness.is_suspended()
    received = now()
    with connection.cursor() as cursor:
        cursor.execute(
            # idx numbers the rows in the order copied (file order): the first row of an event_id is the one stored.
            f"CREATE TEMP TABLE IF NOT EXISTS {_LINE_STAGE} (idx bigint GENERATED ALWAYS AS IDENTITY, ext text, type varchar(64), "
            "event_id varchar(128), properties jsonb, occurred_at timestamptz) ON COMMIT DELETE ROWS"
        )
        if empty_stage_now():
            cursor.execute(f"DELETE FROM {_LINE_STAGE}")  # noqa: S608 - constant table name
        cursor.cursor.copy_expert(f"COPY {_LINE_STAGE} (ext, type, event_id, properties, occurred_at) FROM STDIN WITH (FORMAT csv)",
                                  io.StringIO(staged.text))
        only: list[str] | None = None
        while True:  # a second pass for the rows of customers created meanwhile
            cursor.execute(_STAGED_INSERT, {"tenant": tenant.pk, "source": source, "received": received, "note": note,
                                            "slack": LAST_SEEN_SLACK, "only": None if only is None else text_array(only)})
            summary: tuple[Any, ...] = ()
            for cid, low, high, *rest in cursor.fetchall():
                if cid is None:  # the summary row (first in practice; not relied on)
                    summary = (cid, low, high, *rest)
                else:
                    merge_bounds(seen, cid, low, high)
            result.accepted += summary[3]
            result.customer_ids.update(summary[4] or ())
            types.update(summary[5] or ())
            missing = set(summary[6])
            if only is not None or not missing:
                break
            created: set[int] = set()
            found = ensure_customers(tenant=tenant, external_ids=missing, created=created)
            result.new_customers = len(created)
            erased = missing - set(found)
            if erased:
                result.rejected = [
                    {"index": index, "errors": {"customer_external_id": ["This person was erased; nothing is stored about them."]}}
                    for index, row in enumerate(rows) if row[0] in erased
                ]
            if not found:
                break
            only = sorted(found)
        if empty_stage_now():
            cursor.execute(f"DELETE FROM {_LINE_STAGE}")  # noqa: S608 - constant table name
    result.duplicates = len(rows) - result.accepted - len(result.rejected)
    return result, types


def widen_seen(*, tenant: Tenant, bounds: SeenBounds) -> None:
    """Apply first/last seen bounds collected by `ingest_events(defer_seen=...)`, then clear them."""
    items = sorted(bounds.items())
    # Interleaved rounds, not consecutive slices: round k takes every n-th customer. Customers
    # created together sit together on the table's pages, and a page keeps room (fillfactor)
    # for only two or three new row versions: a slice updating all of a page's customers in one
    # transaction moved most of them off the page, each a new entry in every index (the GIN ones
    # too). One or two per page per round fit, and each committed round's old versions are
    # pruned when the next touches the page, so nearly every update stays on its page (HOT).
    rounds = -(-len(items) // SEEN_ROUND)
    for k in range(rounds):
        part = dict(items[k::rounds])  # still sorted: concurrent writers lock shared rows in one order
        with transaction.atomic():
            _update_seen(tenant, part)
            freshness.customers_changed(tenant_id=tenant.pk, customer_ids=part, kinds=["seen"])
    bounds.clear()


def _touch_seen(tenant: Tenant, seen: list[tuple[int, datetime]], known: Seen | None = None) -> None:
    """Widen first/last seen of the customers in the batch: one UPDATE for the whole batch, of
    only the rows whose window really widens. `known` holds the windows read while resolving the
    customers; a concurrent batch can only have widened them since, so skipping on them is safe."""
    bounds = _widening(_bounds(seen), known)
    if bounds:
        _update_seen(tenant, bounds)


def _bounds(seen: Iterable[tuple[int, datetime]]) -> SeenBounds:
    bounds: SeenBounds = {}
    for cid, moment in seen:
        if cid in bounds:
            low, high = bounds[cid]
            if moment < low:
                bounds[cid] = (moment, high)
            elif moment > high:
                bounds[cid] = (low, moment)
        else:
            bounds[cid] = (moment, moment)
    return bounds


def _widening(bounds: SeenBounds, known: Seen | None) -> SeenBounds:
    if not known:
        return bounds
    return {cid: (low, high) for cid, (low, high) in bounds.items() if _widens(known.get(cid), low, high)}


def _update_seen(tenant: Tenant, bounds: SeenBounds) -> None:
    """One UPDATE widening first/last seen of these customers (re-checked row by row: a concurrent
    batch may have widened them further meanwhile)."""
    if connection.vendor == "postgresql":
        ordered = sorted(bounds.items())
        ids = [cid for cid, _b in ordered]
        with connection.cursor() as cursor:
            # Ids are sorted: concurrent batches lock shared rows in the same order. Three array
            # literals instead of a VALUES list: three parameters to send and parse, not 3 x n.
            # "c.id = ANY(...)" makes the planner fetch the rows by primary key: joined on v.id
            # alone it hashes the whole tenant's customers for a few hundred rows.
            id_array = "{" + ",".join(map(str, ids)) + "}"
            cursor.execute(
                "UPDATE customers_customer AS c SET "
                "first_seen_at = LEAST(COALESCE(c.first_seen_at, v.low), v.low), "
                "last_seen_at = GREATEST(COALESCE(c.last_seen_at, v.high), v.high) "
                "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, low, high) "
                "WHERE c.id = v.id AND c.id = ANY(%s::bigint[]) AND c.tenant_id = %s "
                "AND (c.first_seen_at IS NULL OR c.first_seen_at > v.low "
                "OR c.last_seen_at IS NULL OR c.last_seen_at < v.high - %s)",
                [id_array, text_array(b[0].isoformat() for _c, b in ordered), text_array(b[1].isoformat() for _c, b in ordered),
                 id_array, tenant.pk, LAST_SEEN_SLACK],
            )
        return
    for customer in Customer.objects.for_tenant(tenant).filter(pk__in=list(bounds)):
        low, high = bounds[customer.pk]
        if _widens((customer.first_seen_at, customer.last_seen_at), low, high):
            customer.first_seen_at = min(customer.first_seen_at or low, low)
            customer.last_seen_at = max(customer.last_seen_at or high, high)
            customer.save(update_fields=["first_seen_at", "last_seen_at"])


def _widens(window: tuple[datetime | None, datetime | None] | None, low: datetime, high: datetime) -> bool:
    if window is None:
        return True
    first, last = window
    return first is None or first > low or last is None or last < high - LAST_SEEN_SLACK
