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
