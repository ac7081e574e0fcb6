from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey, AuditLog, JobRun, Membership, Tenant, User
from tenants.roles import Role

TEST_PASSWORD = "correct-horse-battery-staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    currency = "EUR"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    tenant = factory.SubFactory(TenantFactory)
    kind = "audit_export"
    status = JobRun.Status.SUCCEEDED
    progress = 100
    processed = 10
    total = 10
    finished_at = factory.LazyFunction(timezone.now)


class AuditLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditLog

    tenant = factory.SubFactory(TenantFactory)
    actor_label = "someone@example.com"
    action = "test.action"


def make_api_key(tenant: Tenant, scopes: list[str] | None = None, rate_limit: str = "") -> tuple[ApiKey, str]:
    """A key made through the real service, so tests see exactly what integrators get."""
    return services.create_api_key(
        tenant=tenant, actor=None, name="test key", scopes=scopes or list(services.API_SCOPES), rate_limit=rate_limit
    )
