"""What each role may do, through the dashboard the way a person would try it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import ApiKey, Invitation, JobRun, Membership, Tenant
from tenants.roles import PERMISSIONS, Perm, Role
from tests.factories import make_api_key


@pytest.fixture
def target(tenant: Tenant, make_member: Callable[..., Membership]) -> Membership:
    return make_member(Role.MARKETER)


def _writes(tenant: Tenant, target: Membership) -> list[tuple[str, dict[str, str]]]:
    api_key, _raw = make_api_key(tenant, ["jobs:read"])
    invitation = Invitation.objects.create(tenant=tenant, email="p@example.com", role=Role.VIEWER, token_hash="h1",
                                           expires_at="2099-01-01T00:00:00Z")
    slug = tenant.slug
    return [
        (reverse("tenants:settings", args=[slug]), {"name": "Hacked", "locale": "en", "timezone": "UTC", "currency": "EUR", "brand_color": "#000000"}),
        (reverse("tenants:members", args=[slug]), {"email": "new@example.com", "role": "viewer"}),
        (reverse("tenants:member_role", args=[slug, target.pk]), {"role": "admin"}),
        (reverse("tenants:member_remove", args=[slug, target.pk]), {}),
        (reverse("tenants:invitation_revoke", args=[slug, invitation.pk]), {}),
        (reverse("tenants:api_keys", args=[slug]), {"name": "k", "scopes": "jobs:read"}),
        (reverse("tenants:api_key_revoke", args=[slug, api_key.pk]), {}),
        (reverse("tenants:jobs", args=[slug]), {"kind": "audit_export"}),
    ]


def _state(tenant: Tenant) -> tuple:
    tenant.refresh_from_db()
    return (
        tenant.name,
        sorted(Membership.objects.for_tenant(tenant).values_list("user_id", "role")),
        Invitation.objects.for_tenant(tenant).filter(revoked_at__isnull=True).count(),
        sorted(ApiKey.objects.for_tenant(tenant).values_list("pk", "revoked_at")),
        JobRun.objects.for_tenant(tenant).count(),
    )


def test_viewer_cannot_change_anything(
    tenant: Tenant, other_tenant: Tenant, target: Membership, make_member: Callable[..., Membership], login_as: Callable
) -> None:
    # given
    viewer = make_member(Role.VIEWER)
    client: Client = login_as(viewer.user)
    writes = _writes(tenant, target)
    before = _state(tenant)

    # when
    statuses = {url: client.post(url, data).status_code for url, data in writes}

    # then: every write is refused and nothing changed
    assert set(statuses.values()) == {403}, statuses
    assert _state(tenant) == before


def test_viewer_can_read_the_dashboard(tenant: Tenant, other_tenant: Tenant, make_member: Callable[..., Membership], login_as: Callable) -> None:
    client = login_as(make_member(Role.VIEWER).user)

    for name in ("tenants:overview", "tenants:jobs", "tenants:settings", "tenants:members", "segments:list", "customers:list"):
        assert client.get(reverse(name, args=[tenant.slug])).status_code == 200, name
    for name in ("tenants:api_keys", "tenants:audit_log"):
        assert client.get(reverse(name, args=[tenant.slug])).status_code == 403, name


def test_analyst_cannot_manage_keys_or_members(
    tenant: Tenant, other_tenant: Tenant, target: Membership, make_member: Callable[..., Membership], login_as: Callable
) -> None:
    client = login_as(make_member(Role.ANALYST).user)
    writes = [w for w in _writes(tenant, target) if "/settings/members/" in w[0] or "/api-keys/" in w[0] or "/invitations/" in w[0]]
    before = _state(tenant)

    statuses = [client.post(url, data).status_code for url, data in writes]

    assert statuses == [403] * len(writes)
    assert client.get(reverse("tenants:api_keys", args=[tenant.slug])).status_code == 403
    assert _state(tenant) == before


def test_admin_cannot_touch_owners(tenant: Tenant, other_tenant: Tenant, member: Membership, make_member: Callable[..., Membership], login_as: Callable) -> None:
    client = login_as(make_member(Role.ADMIN).user)

    demote = client.post(reverse("tenants:member_role", args=[tenant.slug, member.pk]), {"role": "viewer"})
    remove = client.post(reverse("tenants:member_remove", args=[tenant.slug, member.pk]))
    promote = client.post(reverse("tenants:members", args=[tenant.slug]), {"email": "x@example.com", "role": "owner"})

    assert (demote.status_code, remove.status_code, promote.status_code) == (403, 403, 403)
    member.refresh_from_db()
    assert member.role == Role.OWNER


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_can_manage_members_and_keys(
    role: str, tenant: Tenant, other_tenant: Tenant, target: Membership, make_member: Callable[..., Membership], login_as: Callable
) -> None:
    client = login_as(make_member(role).user)

    assert client.post(reverse("tenants:member_role", args=[tenant.slug, target.pk]), {"role": "analyst"}).status_code == 302
    response = client.post(reverse("tenants:api_keys", args=[tenant.slug]), {"name": "CRM", "scopes": ["jobs:read"]})

    target.refresh_from_db()
    assert target.role == Role.ANALYST
    assert response.status_code == 200
    assert ApiKey.objects.for_tenant(tenant).filter(name="CRM").exists()


def test_readme_roles_table_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"^\|\s*`(\w+)`[^|]*\|(.+)\|\s*$", line)
        if match and match.group(1) in {p.value for p in Perm}:
            rows[match.group(1)] = [cell.strip() == "✓" for cell in match.group(2).split("|")]
    assert set(rows) == {p.value for p in Perm}, "README roles table must list every permission"
    for perm, cells in rows.items():
        assert cells == [role in PERMISSIONS[Perm(perm)] for role in Role], perm
