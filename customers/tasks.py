from celery import shared_task

from customers import services
from tenants.models import Tenant


@shared_task
def purge_expired_events(*, tenant_id: int) -> int:
    tenant = Tenant.objects.get(pk=tenant_id)
    return services.purge_expired_events(tenant=tenant)


@shared_task
def enforce_event_retention() -> int:
    """Nightly: one purge task per tenant that has a retention setting."""
    tenant_ids = list(Tenant.objects.filter(is_active=True, event_retention_days__isnull=False).values_list("pk", flat=True))
    for tenant_id in tenant_ids:
        purge_expired_events.delay(tenant_id=tenant_id)
    return len(tenant_ids)


@shared_task
def purge_unconfirmed_lead_submissions() -> int:
    from customers import leads

    return leads.purge_unconfirmed_submissions()


@shared_task(acks_late=True)
def refresh_customer_segments(*, tenant_id: int, customer_ids: list[int] | None = None, kinds: list[str] | None = None) -> dict:
    """Freshness: re-evaluate the segments of customers that changed (see customers/segments/freshness.py)."""
    from customers.segments import services as segment_services

    tenant = Tenant.objects.get(pk=tenant_id)
    return segment_services.refresh_changed_customers(tenant=tenant, customer_ids=customer_ids, kinds=kinds)


@shared_task
def rebuild_all_segments() -> int:
    """Scheduled reconciliation: one full rebuild job per tenant that has segments."""
    from customers.models import Segment
    from tenants.services import start_job

    tenant_ids = sorted(set(Segment.objects.unscoped().values_list("tenant_id", flat=True)))
    for tenant in Tenant.objects.filter(pk__in=tenant_ids, is_active=True):
        start_job(tenant=tenant, actor=None, kind="segments_rebuild")
    return len(tenant_ids)


@shared_task
def refresh_all_predictions() -> int:
    """Nightly: one predictions job per active tenant that has customers."""
    from customers.models import Customer
    from tenants.services import start_job

    count = 0
    for tenant in Tenant.objects.filter(is_active=True):
        if Customer.objects.for_tenant(tenant).exists():
            start_job(tenant=tenant, actor=None, kind="predictions_refresh")
            count += 1
    return count
