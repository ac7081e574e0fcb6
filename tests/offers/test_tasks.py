"""Offers tasks on a real Celery worker (not eager mode): the portal's sign-in email."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from customers import services as customer_services
from offers.models import PortalSignInLink
from tests.factories import TenantFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_makes_the_link_and_logs_neither_address_nor_token(celery_worker_process: Any, tmp_path: Path) -> None:
    # given: a customer of ours, and the same address at another tenant
    tenant, other = TenantFactory(slug="acme"), TenantFactory(slug="other")
    anna = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "a", "email": "anna@example.com"}]).objects[0]
    customer_services.upsert_customers(tenant=other, rows=[{"external_id": "a", "email": "anna@example.com"}])

    # when: a known and an unknown address are asked for; the page answers before any link exists
    for email in ("nobody@example.com", "anna@example.com"):
        response = Client().post(reverse("portal:sign_in", kwargs={"tenant_slug": tenant.slug}), {"email": email})
        assert response.status_code == 200
    deadline = time.monotonic() + 60
    while not PortalSignInLink.objects.unscoped().exists() and time.monotonic() < deadline:
        assert celery_worker_process.poll() is None, "worker died"
        time.sleep(0.1)
    time.sleep(1)  # the unknown address's task was queued first; give a wrong link time to show up

    # then: one link, for our customer only, and the worker's log names neither the address nor a token
    assert list(PortalSignInLink.objects.unscoped().values_list("tenant_id", "customer_id")) == [(tenant.pk, anna.pk)]
    log = (tmp_path / "worker.log").read_text()
    assert "offers.tasks.send_sign_in_link" in log and "succeeded" in log
    assert "example.com" not in log and "/link/" not in log
