from celery import shared_task


# A mail server that refuses or times out (smtplib's errors are OSErrors) is retried a few times
# within the link's 15 minutes; each try makes a fresh link. Returns None: Celery logs return values.
@shared_task(autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=120, max_retries=4)
def send_sign_in_link(*, tenant_id: int, email: str, language: str = "") -> None:
    """Email a portal sign-in link if a customer of this tenant has the address (asked for on the sign-in page)."""
    from offers.portal import services
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    if tenant is not None:
        services.send_sign_in_link(tenant=tenant, email=email, language=language)


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
