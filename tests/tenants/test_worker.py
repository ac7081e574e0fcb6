"""A real Celery worker process (not eager mode) runs a job; its progress reaches the dashboard."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tenants import services
from tenants.models import AuditLog, JobRun
from tenants.roles import Role
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_runs_job_and_progress_reaches_the_page(celery_worker_process: Any) -> None:
    # given: a tenant with enough audit entries for many progress steps, and its owner's dashboard
    tenant = TenantFactory(slug="worker-test")
    other = TenantFactory(slug="worker-other")
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory())
    AuditLog.objects.bulk_create([AuditLog(tenant=tenant, actor_label="seed", action=f"seed.{i}") for i in range(6000)])
    AuditLog.objects.bulk_create([AuditLog(tenant=other, actor_label="seed", action="other.secret") for _ in range(50)])
    client = Client()
    client.force_login(owner.user)

    # when: the owner starts an export; the service enqueues it after commit to the real broker
    job = services.start_job(tenant=tenant, actor=owner.user, actor_membership=owner, kind="audit_export", params={"batch_size": 100})
    url = reverse("tenants:job_detail", args=[tenant.slug, job.pk])
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = client.get(url, HTTP_HX_REQUEST="true").content.decode()
        status = re.search(r'data-status="(\w+)"', body).group(1)
        progress = int(re.search(r'aria-valuenow="(\d+)"', body).group(1))
        seen.append((status, progress))
        if status in JobRun.FINISHED:
            break
        assert celery_worker_process.poll() is None, "worker died"
        time.sleep(0.1)

    # then: the page went from queued/running to succeeded at 100%, with the row count
    job.refresh_from_db()
    assert job.status == JobRun.Status.SUCCEEDED, (job.error, seen[-5:])
    assert seen[0][0] in ("queued", "running") and seen[-1] == ("succeeded", 100)
    progresses = [p for _s, p in seen]
    assert progresses == sorted(progresses), "progress never goes backwards"
    final = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    expected_rows = AuditLog.objects.for_tenant(tenant).count() - 1  # the export's own job.started entry is newer
    assert f"{job.processed} / {job.total}" in final and job.total >= 6000
    assert "hx-trigger" not in final, "polling stops once the job has finished"
    # the worker touched only this tenant's rows
    content = job.result_file.open("rb").read().decode()
    assert "other.secret" not in content and content.count("\n") >= expected_rows
