from celery import shared_task

from tenants import services
from tenants.models import Tenant


@shared_task(acks_late=True)
def run_job(*, tenant_id: int, job_id: int) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    services.run_job(tenant=tenant, job_id=job_id)


@shared_task
def fail_stalled_jobs() -> int:
    return services.fail_stalled_jobs()
