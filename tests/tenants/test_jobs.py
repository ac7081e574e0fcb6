from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from b2p_platform.exceptions import DomainError, ForbiddenError
from tenants import services, tasks
from tenants.jobs import JobContext, register_job
from tenants.models import AuditLog, JobRun, Membership, Tenant
from tenants.roles import Role
from tests.factories import AuditLogFactory, JobRunFactory


@register_job("test_boom")
def _exploding_job(job: JobContext) -> dict[str, Any]:
    job.set_total(10)
    job.advance(3)
    raise ValueError("disk on fire")


def test_start_job_enqueues_after_commit(tenant: Tenant, member: Membership, django_capture_on_commit_callbacks: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.run_job, "delay", lambda **kw: sent.append(kw))

    with django_capture_on_commit_callbacks() as callbacks:
        job = services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="audit_export")
        assert sent == []  # nothing leaves before the transaction commits

    for callback in callbacks:
        callback()
    assert sent == [{"tenant_id": tenant.pk, "job_id": job.pk}]
    assert job.status == JobRun.Status.QUEUED


def test_run_job_exports_only_this_tenants_audit_log(tenant: Tenant, other_tenant: Tenant, member: Membership) -> None:
    AuditLogFactory.create_batch(25, tenant=tenant, action="ours")
    others_before = AuditLog.objects.for_tenant(other_tenant).count()
    job = services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="audit_export", params={"batch_size": 7})

    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.progress, job.processed, job.total) == ("succeeded", 100, 26, 26)
    content = job.result_file.open("rb").read().decode()
    assert content.count("ours") == 25 and "lookalike.seeded" not in content
    assert job.result == {"rows": 26}
    assert AuditLog.objects.for_tenant(other_tenant).count() == others_before


def test_redelivered_job_runs_once(tenant: Tenant, member: Membership) -> None:
    job = services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="audit_export")
    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)
    finished_at = JobRun.objects.for_tenant(tenant).get(pk=job.pk).finished_at

    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)

    assert JobRun.objects.for_tenant(tenant).get(pk=job.pk).finished_at == finished_at


def test_job_for_another_tenant_is_not_run(tenant: Tenant, other_tenant: Tenant, member: Membership) -> None:
    job = services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="audit_export")

    services.run_job(tenant=other_tenant, job_id=job.pk)

    assert JobRun.objects.for_tenant(tenant).get(pk=job.pk).status == JobRun.Status.QUEUED


def test_failing_job_is_marked_failed_with_its_error(tenant: Tenant, member: Membership) -> None:
    job = services.start_job(tenant=tenant, actor=member.user, kind="test_boom")

    with pytest.raises(ValueError, match="disk on fire"):
        tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == JobRun.Status.FAILED
    assert job.error == "ValueError: disk on fire"
    assert job.processed == 3 and job.finished_at is not None


def test_stalled_jobs_are_failed_by_the_sweeper(tenant: Tenant, other_tenant: Tenant) -> None:
    stale = JobRunFactory(tenant=tenant, status="running", finished_at=None, heartbeat_at=timezone.now() - timedelta(hours=2))
    fresh = JobRunFactory(tenant=other_tenant, status="running", finished_at=None, heartbeat_at=timezone.now())

    assert tasks.fail_stalled_jobs() == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed" and "stopped reporting" in stale.error
    assert fresh.status == "running"


@pytest.mark.parametrize(("kind", "error"), [("no_such_job", DomainError), ("audit_export", ForbiddenError)])
def test_start_job_refuses_unknown_kinds_and_roles(kind: str, error: type, tenant: Tenant, make_member: Callable) -> None:
    marketer = make_member(Role.MARKETER)

    with pytest.raises(error):
        services.start_job(tenant=tenant, actor=marketer.user, actor_membership=marketer, kind=kind)
    assert not JobRun.objects.for_tenant(tenant).exists()


def test_api_starts_job_and_reports_status(api_client: APIClient, tenant: Tenant) -> None:
    created = api_client.post(reverse("api:job-list"), {"kind": "audit_export"}, format="json")
    job_id = created.json()["id"]
    tasks.run_job(tenant_id=tenant.pk, job_id=job_id)

    status = api_client.get(reverse("api:job-detail", args=[job_id])).json()
    download = api_client.get(status["result_file_url"])

    assert created.status_code == 202
    assert (status["status"], status["progress"]) == ("succeeded", 100)
    assert download.status_code == 200 and b"time,actor,action" in b"".join(download.streaming_content)


@pytest.mark.parametrize(
    ("payload", "field"), [({"kind": "nope"}, "kind"), ({}, "kind"), ({"kind": "audit_export", "params": "x"}, "params")]
)
def test_api_start_job_bad_input_is_a_400_with_field_errors(payload: dict, field: str, api_client: APIClient, tenant: Tenant) -> None:
    response = api_client.post(reverse("api:job-list"), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not JobRun.objects.for_tenant(tenant).exists()


def test_api_malformed_json_is_a_400(api_client: APIClient, tenant: Tenant) -> None:
    response = api_client.post(reverse("api:job-list"), "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()


def test_api_job_list_is_cursor_paginated(api_client: APIClient, tenant: Tenant) -> None:
    JobRunFactory.create_batch(5, tenant=tenant)

    first = api_client.get(reverse("api:job-list"), {"limit": 2}).json()
    second = api_client.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 2
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
