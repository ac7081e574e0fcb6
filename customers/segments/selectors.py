"""Segment reads for pages and endpoints. Every function takes the tenant first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from customers.models import Customer, CustomerScore, PredictionRun, Segment, SegmentChange, SegmentMembership, SegmentSize
from tenants.models import Tenant

TREND_DAYS = 30


def list_segments(*, tenant: Tenant, kind: str = "") -> QuerySet[Segment]:
    segments = Segment.objects.for_tenant(tenant)
    if kind:
        segments = segments.filter(kind=kind)
    return segments.order_by("kind", "name", "id")


def get_segment(*, tenant: Tenant, segment_id: int) -> Segment:
    return get_object_or_404(Segment.objects.for_tenant(tenant), pk=segment_id)


def size_trends(*, tenant: Tenant, segments: list[Segment], days: int = TREND_DAYS) -> dict[int, list[int]]:
    """Daily sizes of each segment over the last `days` days, oldest first: one query for the page."""
    since = timezone.localdate() - timedelta(days=days)
    trends: dict[int, list[int]] = {s.pk: [] for s in segments}
    rows = (SegmentSize.objects.for_tenant(tenant).filter(segment_id__in=list(trends), day__gte=since)
            .order_by("segment_id", "day").values_list("segment_id", "size"))
    for segment_id, size in rows:
        trends[segment_id].append(size)
    return trends


def list_members(*, tenant: Tenant, segment: Segment) -> QuerySet[Customer]:
    """The segment's customers, newest first (callers page with keysets on id)."""
    members = SegmentMembership.objects.for_tenant(tenant).filter(segment=segment).values("customer_id")
    return Customer.objects.for_tenant(tenant).filter(pk__in=members).select_related("company").order_by("-id")


def list_member_changes(*, tenant: Tenant, segment: Segment, limit: int = 20) -> list[SegmentChange]:
    changes = SegmentChange.objects.for_tenant(tenant).filter(segment=segment).select_related("customer")
    return list(changes.order_by("-at", "-id")[:limit])


def customer_segments(*, tenant: Tenant, customer: Customer) -> list[SegmentMembership]:
    memberships = SegmentMembership.objects.for_tenant(tenant).filter(customer=customer).select_related("segment")
    return list(memberships.order_by("segment__kind", "segment__name"))


def customer_segment_history(*, tenant: Tenant, customer: Customer, limit: int = 50) -> list[SegmentChange]:
    changes = SegmentChange.objects.for_tenant(tenant).filter(customer=customer).select_related("segment")
    return list(changes.order_by("-at", "-id")[:limit])


def segment_overlap(*, tenant: Tenant, segment: Segment) -> list[dict[str, Any]]:
    """For each other segment sharing members: how many, and what share of this one. One query."""
    table = SegmentMembership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT b.segment_id, count(*) FROM {table} a JOIN {table} b "
            f"ON b.customer_id = a.customer_id AND b.tenant_id = a.tenant_id AND b.segment_id <> a.segment_id "
            f"WHERE a.tenant_id = %s AND a.segment_id = %s GROUP BY b.segment_id",
            [tenant.pk, segment.pk],
        )
        shared = dict(cursor.fetchall())
    others = {s.pk: s for s in Segment.objects.for_tenant(tenant).filter(pk__in=list(shared))}
    size = max(segment.member_count, 1)
    rows = [{"segment": others[pk], "shared": n, "share": n / size,
             "of_other": n / max(others[pk].member_count, 1)} for pk, n in shared.items() if pk in others]
    return sorted(rows, key=lambda r: -r["shared"])


def get_customer_score(*, tenant: Tenant, customer: Customer) -> CustomerScore | None:
    return CustomerScore.objects.for_tenant(tenant).filter(customer=customer).first()


def latest_prediction_runs(*, tenant: Tenant) -> dict[str, PredictionRun]:
    """The newest run of each model."""
    latest: dict[str, PredictionRun] = {}
    for model in PredictionRun.Model.values:
        run = PredictionRun.objects.for_tenant(tenant).filter(model=model).order_by("-trained_at", "-id").first()
        if run is not None:
            latest[model] = run
    return latest


def list_prediction_runs(*, tenant: Tenant, model: str) -> QuerySet[PredictionRun]:
    return PredictionRun.objects.for_tenant(tenant).filter(model=model).order_by("-trained_at", "-id")
