from b2p_platform.celery import app as celery_app

__all__ = ("celery_app",)
