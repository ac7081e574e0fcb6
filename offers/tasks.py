from celery import shared_task


@shared_task
def purge_expired_sign_in_links() -> int:
    """Daily: portal sign-in links long expired or used say only that someone signed in."""
    from offers.portal import services

    return services.purge_expired_sign_in_links()
