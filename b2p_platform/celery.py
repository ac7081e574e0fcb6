"""Celery application: configuration comes from Django settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "b2p_platform.settings.base")

app = Celery("b2p_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
