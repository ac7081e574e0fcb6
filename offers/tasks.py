from celery import shared_task


@shared_task
def purge_expired_sign_in_links() -> int:
    """Daily: portal sign-in links long expired or used say only that someone signed in."""
    from offers.portal import services

    return services.purge_expired_sign_in_links()


@shared_task
def train_all_recommendations() -> int:
    """Nightly: one recommendation training job per active tenant that has active offers."""
    from offers.models import Offer
    from tenants.models import Tenant
    from tenants.services import start_job

    count = 0
    for tenant in Tenant.objects.filter(is_active=True):
        if Offer.objects.for_tenant(tenant).filter(status=Offer.Status.ACTIVE).exists():
            start_job(tenant=tenant, actor=None, kind="recommendations_train")
            count += 1
    return count
