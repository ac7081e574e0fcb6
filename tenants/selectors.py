"""Reads for tenant pages and endpoints. Every function takes the tenant first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404

from tenants.models import ApiKey, AuditLog, Invitation, JobRun, Membership, Tenant, User

M = TypeVar("M", bound=Model)


def list_user_tenants(*, user: User) -> QuerySet[Membership]:
    """The tenant switcher: every active tenant the user belongs to (scoped through the user)."""
    return (
        Membership.objects.unscoped()
        .filter(user=user, tenant__is_active=True)
        .select_related("tenant")
        .order_by("tenant__name")
    )


def list_members(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")


def get_membership(*, tenant: Tenant, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.for_tenant(tenant).select_related("user"), pk=membership_id)


def list_pending_invitations(*, tenant: Tenant) -> QuerySet[Invitation]:
    from django.utils import timezone

    return (
        Invitation.objects.for_tenant(tenant)
        .filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .select_related("invited_by")
    )


def get_invitation(*, tenant: Tenant, invitation_id: int) -> Invitation:
    return get_object_or_404(Invitation.objects.for_tenant(tenant), pk=invitation_id)


def list_api_keys(*, tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_tenant(tenant).select_related("created_by")


def get_api_key(*, tenant: Tenant, api_key_id: int) -> ApiKey:
    return get_object_or_404(ApiKey.objects.for_tenant(tenant), pk=api_key_id)


def list_audit_log(*, tenant: Tenant, action: str | None = None) -> QuerySet[AuditLog]:
    entries = AuditLog.objects.for_tenant(tenant).order_by("-created_at", "-id")
    if action:
        entries = entries.filter(action=action)
    return entries


def list_jobs(*, tenant: Tenant, status: str | None = None) -> QuerySet[JobRun]:
    jobs = JobRun.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at", "-id")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def get_job(*, tenant: Tenant, job_id: int) -> JobRun:
    return get_object_or_404(JobRun.objects.for_tenant(tenant), pk=job_id)


def iter_in_batches(queryset: QuerySet[M], *, batch_size: int = 2000) -> Iterator[list[M]]:
    """Keyset batches over a queryset ordered by descending primary key; no OFFSET scans."""
    last_pk = None
    ordered = queryset.order_by("-pk")
    while True:
        page = ordered if last_pk is None else ordered.filter(pk__lt=last_pk)
        batch = list(page[:batch_size])
        if not batch:
            return
        yield batch
        last_pk = batch[-1].pk


def get_tenant_for_update(*, tenant: Tenant) -> Tenant:
    """A fresh copy to bind a settings form to, so a failed form leaves request.tenant intact."""
    return Tenant.objects.get(pk=tenant.pk)


def audit_activity_by_day(*, tenant: Tenant, days: int = 14) -> list[dict[str, object]]:
    """Audit entries per day over the last `days` days (index-bounded by time), zero-filled."""
    from datetime import timedelta

    from django.db.models import Count
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (
        AuditLog.objects.for_tenant(tenant)
        .filter(created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["day"]: row["n"] for row in rows}
    return [{"day": (start + timedelta(days=i)).isoformat(), "count": counts.get(start + timedelta(days=i), 0)} for i in range(days)]
