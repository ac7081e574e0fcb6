from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from tenants import services
from tenants.models import ApiKey, AuditLog, Tenant
from tests.factories import JobRunFactory, make_api_key


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _all_database_text() -> str:
    """Every value in every table of the database, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            chunks.extend(str(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_only_the_hash_of_a_key_is_stored(tenant: Tenant, other_tenant: Tenant) -> None:
    # given
    api_key, raw_key = make_api_key(tenant, ["jobs:read"])

    # when
    stored = _all_database_text()

    # then
    secret = raw_key[len(f"b2p_{api_key.prefix}_"):]
    assert raw_key.startswith(f"b2p_{api_key.prefix}_")
    assert raw_key not in stored and secret not in stored
    assert api_key.key_hash == services.hash_secret(raw_key)
    assert AuditLog.objects.for_tenant(tenant).filter(action="api_key.created").exists()


def test_valid_key_authenticates_and_records_last_use(tenant: Tenant, other_tenant: Tenant) -> None:
    api_key, raw_key = make_api_key(tenant, ["jobs:read"])
    assert api_key.last_used_at is None

    response = _client(raw_key).get(reverse("api:job-list"))

    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_whoami_answers_for_the_keys_own_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    _api_key, raw_key = make_api_key(tenant, ["jobs:read"])

    body = _client(raw_key).get(reverse("api:whoami")).json()

    assert body["tenant"]["slug"] == tenant.slug
    assert body["scopes"] == ["jobs:read"]


def test_revoked_key_is_refused_at_once(tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a key that works
    api_key, raw_key = make_api_key(tenant, ["jobs:read"])
    client = _client(raw_key)
    assert client.get(reverse("api:job-list")).status_code == 200

    # when
    services.revoke_api_key(tenant=tenant, actor=None, api_key=api_key)

    # then: the very next request fails
    response = client.get(reverse("api:job-list"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer nonsense", "Token b2p_abc_def", "Bearer b2p_000000000000_wrongsecret", "Basic dXNlcjpwYXNz"],
)
def test_missing_or_wrong_credentials_are_refused(header: str, tenant: Tenant, other_tenant: Tenant) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(reverse("api:job-list"))

    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_key_in_query_string_is_refused(tenant: Tenant, other_tenant: Tenant) -> None:
    _api_key, raw_key = make_api_key(tenant, ["jobs:read"])

    for params in ({"key": raw_key}, {"api_key": raw_key}, {"q": raw_key}):
        response = APIClient().get(reverse("api:job-list"), params)
        assert response.status_code == 401
        assert "Authorization header" in response.json()["detail"]


def test_scopes_are_enforced(tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a key that may only read jobs, and one that may only write customers
    _k1, read_jobs = make_api_key(tenant, ["jobs:read"])
    _k2, customers_only = make_api_key(tenant, ["customers:write"])
    job = JobRunFactory(tenant=tenant)

    # then: reads are allowed with :read, writes need :write, other resources need their own scope
    assert _client(read_jobs).get(reverse("api:job-detail", args=[job.pk])).status_code == 200
    assert _client(read_jobs).post(reverse("api:job-list"), {"kind": "audit_export"}, format="json").status_code == 403
    response = _client(customers_only).get(reverse("api:job-list"))
    assert response.status_code == 403
    assert "jobs:read" in response.json()["detail"]


def test_write_scope_includes_read(tenant: Tenant, other_tenant: Tenant) -> None:
    _k, raw = make_api_key(tenant, ["jobs:write"])

    assert _client(raw).get(reverse("api:job-list")).status_code == 200


def test_throttling_answers_429_with_retry_after(tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a key limited to 3 requests a minute
    _api_key, raw_key = make_api_key(tenant, ["jobs:read"], rate_limit="3/min")
    client = _client(raw_key)

    # when
    statuses = [client.get(reverse("api:job-list")).status_code for _ in range(4)]
    response = client.get(reverse("api:job-list"))

    # then
    assert statuses == [200, 200, 200, 429]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60


def test_throttling_is_per_key(tenant: Tenant, other_tenant: Tenant) -> None:
    _k1, limited = make_api_key(tenant, ["jobs:read"], rate_limit="1/min")
    _k2, other = make_api_key(tenant, ["jobs:read"], rate_limit="1/min")

    assert _client(limited).get(reverse("api:job-list")).status_code == 200
    assert _client(limited).get(reverse("api:job-list")).status_code == 429
    assert _client(other).get(reverse("api:job-list")).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"scopes": ["jobs:fly"]}, "scopes"), ({"scopes": []}, "scopes"), ({"scopes": ["jobs:read"], "rate_limit": "lots"}, "rate_limit")],
)
def test_create_key_rejects_bad_input(kwargs: dict[str, Any], field: str, tenant: Tenant, other_tenant: Tenant) -> None:
    from b2p_platform.exceptions import DomainError

    with pytest.raises(DomainError) as info:
        services.create_api_key(tenant=tenant, actor=None, name="k", **kwargs)

    assert info.value.field == field
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_key_of_deactivated_tenant_is_refused(tenant: Tenant, other_tenant: Tenant) -> None:
    _k, raw = make_api_key(tenant, ["jobs:read"])
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

    assert _client(raw).get(reverse("api:job-list")).status_code == 401


def test_create_api_key_command_prints_key_once(tenant: Tenant, other_tenant: Tenant, capsys: Any) -> None:
    from django.core.management import call_command

    call_command("create_api_key", tenant.slug, "--scopes", "jobs:read", "customers:write")

    raw_key = capsys.readouterr().out.strip()
    assert _client(raw_key).get(reverse("api:job-list")).status_code == 200
    assert ApiKey.objects.for_tenant(tenant).get().scopes == ["customers:write", "jobs:read"]
