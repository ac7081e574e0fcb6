"""Shared fixtures. `other_tenant` always exists with look-alike data, so a query that forgets
the tenant scope shows up as a leak in whatever test runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone, translation
from rest_framework.test import APIClient

from tenants.models import Invitation, Membership, Tenant, User
from tenants.roles import Role
from tests.factories import (
    TEST_PASSWORD,
    AuditLogFactory,
    JobRunFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
    make_api_key,
    seed_customer_data,
)


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Throttle counters and sign-in failure counters live in the (Redis) cache.
    cache.clear()
    from offers.services import pricing

    pricing._active_offers.clear()  # the per-process copy of each tenant's active offers


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    # A request activates its language in this thread and nothing deactivates it afterwards: a
    # Russian page or task in one test would otherwise leave the next test's messages in Russian.
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(name="Acme Telecom", slug="acme")


def _seed_lookalike(tenant: Tenant) -> dict[str, Any]:
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email=f"owner@{tenant.slug}.example"))
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER)
    api_key, raw_key = make_api_key(tenant)
    invitation = Invitation.objects.create(
        tenant=tenant, email=f"invitee@{tenant.slug}.example", role=Role.MARKETER, token_hash=f"hash-{tenant.slug}",
        expires_at=timezone.now() + timedelta(days=3),
    )
    job = JobRunFactory(tenant=tenant)
    audit = AuditLogFactory(tenant=tenant, action="lookalike.seeded")
    people = seed_customer_data(tenant)
    return {
        "owner": owner, "viewer": viewer, "api_key": api_key, "raw_key": raw_key,
        "invitation": invitation, "job": job, "audit": audit, **people,
    }


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    """A second tenant with the same kinds of rows as `tenant`: the thing nobody may reach."""
    other = TenantFactory(name="Other Telecom", slug="other")
    other.seeded = _seed_lookalike(other)  # type: ignore[attr-defined]
    return other


@pytest.fixture
def member(tenant: Tenant, other_tenant: Tenant) -> Membership:
    """The owner of `tenant` (other_tenant exists beside it, always)."""
    return MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="owner@acme.example"))


@pytest.fixture
def make_member(tenant: Tenant) -> Callable[..., Membership]:
    def make(role: str = Role.MARKETER, *, on: Tenant | None = None, email: str | None = None) -> Membership:
        user = UserFactory(email=email) if email else UserFactory()
        return MembershipFactory(tenant=on or tenant, role=role, user=user)

    return make


@pytest.fixture
def dashboard_client(member: Membership) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


@pytest.fixture
def login_as() -> Callable[[User], Client]:
    def login(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return login


@pytest.fixture
def api_key(tenant: Tenant, other_tenant: Tenant) -> tuple[Any, str]:
    return make_api_key(tenant)


@pytest.fixture
def api_client(api_key: tuple[Any, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    return client


@pytest.fixture
def password() -> str:
    return TEST_PASSWORD


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Tasks enqueued during this one test run at once, in this process (the live server's thread
    too), so what they send lands in mail.outbox. Only where a test needs a task's effect and no
    worker: a real worker is `celery_worker_process`, and eager mode is never global."""
    from b2p_platform.celery import app as celery_app

    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def celery_worker_process(tmp_path: Path, transactional_db: None) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the real broker, reading the test database.
    Needs a transactional test: the worker only sees committed rows."""
    from b2p_platform.celery import app as celery_app

    if not settings.REDIS_URL:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs REDIS_URL: the worker test runs against a real broker")
    celery_app.control.purge()  # drop messages an earlier run may have left in the test queue
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "b2p_platform.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "b2p_platform", "worker", "--pool=solo", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
         "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    print((tmp_path / "worker.log").read_text()[-3000:])
