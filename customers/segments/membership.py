"""Keeping stored memberships equal to what each definition selects.

Two ways, one rule: a full rebuild evaluates a segment's query over the whole tenant and applies
the difference in SQL (set-based: at a million members nothing passes through Python); an
incremental refresh evaluates every affected segment for a handful of changed customers and
applies their difference. Both write the same history rows (SegmentChange), keep member_count
right and hold the segment row lock while they write, so a rebuild and a refresh of the same
segment never interleave (locks are taken one segment at a time, in id order: no deadlocks).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from customers.models import Segment, SegmentChange, SegmentMembership, SegmentSize
from customers.segments.definition import compile_definition, query_settings
from tenants.models import Tenant

MEMBERSHIP = SegmentMembership._meta.db_table
CHANGES = SegmentChange._meta.db_table
STAGE = "segment_rebuild_stage"


@dataclass(frozen=True)
class RebuildResult:
    size: int
    entered: int
    left: int
    ms: int


def _stage_sql(tenant: Tenant, segment: Segment, now: datetime) -> tuple[str, tuple[object, ...]]:
    matched = compile_definition(tenant=tenant, definition=segment.definition, now=now).order_by().values_list("pk", flat=True)
    sql, params = matched.query.sql_with_params()
    return sql, tuple(params)


@transaction.atomic
def rebuild_segment(*, tenant: Tenant, segment_id: int, now: datetime | None = None) -> RebuildResult:
    """Re-evaluate one segment over all the tenant's customers and store the difference."""
    started = time.perf_counter()
    now = now or timezone.now()
    segment = Segment.objects.for_tenant(tenant).select_for_update().get(pk=segment_id)
    sql, params = _stage_sql(tenant, segment, now)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # NOT IN over an aggregate is only fast as a hashed subplan, which must fit in work_mem.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} (customer_id bigint PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {STAGE} (customer_id) {sql}", params)
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {STAGE}")
        member = f"SELECT 1 FROM {MEMBERSHIP} m WHERE m.segment_id = %s AND m.customer_id = n.customer_id"
        staged = f"SELECT 1 FROM {STAGE} n WHERE n.customer_id = m.customer_id"
        cursor.execute(
            f"INSERT INTO {CHANGES} (tenant_id, segment_id, customer_id, change, at) "
            f"SELECT %s, %s, n.customer_id, 'entered', %s FROM {STAGE} n WHERE NOT EXISTS ({member})",
            (tenant.pk, segment.pk, now, segment.pk),
        )
        entered = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {CHANGES} (tenant_id, segment_id, customer_id, change, at) "
            f"SELECT %s, %s, m.customer_id, 'left', %s FROM {MEMBERSHIP} m WHERE m.segment_id = %s AND NOT EXISTS ({staged})",
            (tenant.pk, segment.pk, now, segment.pk),
        )
        left = cursor.rowcount
        if left:
            cursor.execute(f"DELETE FROM {MEMBERSHIP} WHERE segment_id = %s AND NOT EXISTS "
                           f"(SELECT 1 FROM {STAGE} n WHERE n.customer_id = {MEMBERSHIP}.customer_id)", (segment.pk,))
        if entered:
            cursor.execute(
                f"INSERT INTO {MEMBERSHIP} (tenant_id, segment_id, customer_id, entered_at) "
                f"SELECT %s, %s, n.customer_id, %s FROM {STAGE} n WHERE NOT EXISTS ({member})",
                (tenant.pk, segment.pk, now, segment.pk),
            )
        cursor.execute(f"SELECT count(*) FROM {STAGE}")
        size = int(cursor.fetchone()[0])
        cursor.execute(f"DROP TABLE {STAGE}")
    ms = int((time.perf_counter() - started) * 1000)
    Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(
        member_count=size, refreshed_at=now, refresh_ms=ms, status=Segment.Status.READY, last_error="",
    )
    _record_size(tenant=tenant, segment_id=segment.pk, size=size, day=now)
    return RebuildResult(size=size, entered=entered, left=left, ms=ms)


def _record_size(*, tenant: Tenant, segment_id: int, size: int, day: datetime) -> None:
    SegmentSize.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, segment_id=segment_id, day=timezone.localdate(day), defaults={"size": size},
    )


def refresh_for_customers(
    *, tenant: Tenant, segment_ids: Iterable[int], customer_ids: list[int], now: datetime | None = None,
) -> dict[int, tuple[int, int]]:
    """Re-evaluate the given segments (in the order given) for a few customers; {segment: (entered, left)}."""
    now = now or timezone.now()
    changed: dict[int, tuple[int, int]] = {}
    for segment_id in segment_ids:
        with query_settings():
            segment = (Segment.objects.for_tenant(tenant).select_for_update()
                       .filter(pk=segment_id, status=Segment.Status.READY).first())
            if segment is None:  # deleted, or its first build has not finished: that build covers everyone
                continue
            matched = set(compile_definition(tenant=tenant, definition=segment.definition, customer_ids=customer_ids, now=now)
                          .values_list("pk", flat=True))
            memberships = SegmentMembership.objects.for_tenant(tenant).filter(segment_id=segment_id, customer_id__in=customer_ids)
            current = set(memberships.values_list("customer_id", flat=True))
            entered, left = sorted(matched - current), sorted(current - matched)
            if not entered and not left:
                continue
            if left:
                memberships.filter(customer_id__in=left).delete()
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(tenant=tenant, segment_id=segment_id, customer_id=c, entered_at=now) for c in entered])
            SegmentChange.objects.bulk_create(
                [SegmentChange(tenant=tenant, segment_id=segment_id, customer_id=c, change=SegmentChange.Change.ENTERED, at=now)
                 for c in entered]
                + [SegmentChange(tenant=tenant, segment_id=segment_id, customer_id=c, change=SegmentChange.Change.LEFT, at=now)
                   for c in left])
            Segment.objects.for_tenant(tenant).filter(pk=segment_id).update(member_count=F("member_count") + len(entered) - len(left))
            changed[segment_id] = (len(entered), len(left))
    return changed


def dependency_order(segments: list[Segment]) -> list[Segment]:
    """Segments that others reference come first (definitions cannot form cycles)."""
    by_id = {s.pk: s for s in segments}
    ordered: list[Segment] = []
    done: set[int] = set()

    def visit(segment: Segment, trail: frozenset[int]) -> None:
        if segment.pk in done or segment.pk in trail:
            return
        for dep in segment.depends_on:
            if dep.startswith("segment:"):
                target = by_id.get(int(dep.split(":", 1)[1]))
                if target is not None:
                    visit(target, trail | {segment.pk})
        done.add(segment.pk)
        ordered.append(segment)

    for segment in sorted(segments, key=lambda s: s.pk):
        visit(segment, frozenset())
    return ordered


def affected_segments(*, segments: list[Segment], kinds: set[str]) -> list[Segment]:
    """Segments whose definition reads any of `kinds`, plus those built on them, in dependency order."""
    hit = {s.pk for s in segments if _reads(s.depends_on, kinds)}
    grew = True
    while grew:
        grew = False
        for s in segments:
            if s.pk not in hit and any(f"segment:{h}" in s.depends_on for h in hit):
                hit.add(s.pk)
                grew = True
    return [s for s in dependency_order(segments) if s.pk in hit]


def _reads(depends_on: list[str], kinds: set[str]) -> bool:
    if "*" in kinds:  # erasure: every segment
        return True
    return any(dep in kinds or (dep.startswith("event:") and "event:*" in kinds) for dep in depends_on)
