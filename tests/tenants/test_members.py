from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from b2p_platform.exceptions import ConflictError, DomainError, ForbiddenError
from tenants import services
from tenants.models import AuditLog, Invitation, Membership, Tenant, User
from tenants.roles import Role


def _invite(tenant: Tenant, member: Membership, email: str = "new@example.com", role: str = Role.MARKETER) -> str:
    _inv, token = services.invite_member(tenant=tenant, actor=member.user, actor_membership=member, email=email, role=role)
    return token


def test_invitation_email_is_sent_after_commit_and_token_is_hashed(
    tenant: Tenant, member: Membership, django_capture_on_commit_callbacks: Callable
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        token = _invite(tenant, member, "New.Person@Example.com")

    invitation = Invitation.objects.for_tenant(tenant).get(email="new.person@example.com")
    assert invitation.token_hash == services.hash_secret(token)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.com"]
    assert token in mail.outbox[0].body


def test_new_person_accepts_invitation_and_signs_in(tenant: Tenant, member: Membership, client: Client, password: str) -> None:
    token = _invite(tenant, member)

    response = client.post(reverse("tenants:accept_invitation", args=[token]),
                           {"full_name": "Nina New", "password1": password, "password2": password})

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert Membership.objects.for_tenant(tenant).get(user=user).role == Role.MARKETER
    assert client.get(reverse("tenants:overview", args=[tenant.slug])).status_code == 200
    assert AuditLog.objects.for_tenant(tenant).filter(action="member.joined", actor=user).exists()
    # the link works once
    assert client.get(reverse("tenants:accept_invitation", args=[token])).status_code == 404


def test_existing_user_accepts_while_signed_in(tenant: Tenant, member: Membership, make_member: Callable, login_as: Callable, other_tenant: Tenant) -> None:
    existing = make_member(Role.VIEWER, on=other_tenant, email="multi@example.com").user
    token = _invite(tenant, member, "multi@example.com", Role.ANALYST)

    response = login_as(existing).post(reverse("tenants:accept_invitation", args=[token]))

    assert response.status_code == 302
    assert Membership.objects.for_tenant(tenant).get(user=existing).role == Role.ANALYST


def test_invitation_for_another_address_is_refused(tenant: Tenant, member: Membership, make_member: Callable, login_as: Callable) -> None:
    stranger = make_member(Role.VIEWER, email="stranger@example.com").user
    token = _invite(tenant, member, "someone@example.com")

    response = login_as(stranger).post(reverse("tenants:accept_invitation", args=[token]))

    assert response.status_code == 200
    assert "another email address" in response.content.decode()
    assert not Membership.objects.for_tenant(tenant).filter(user__email="someone@example.com").exists()


@pytest.mark.parametrize("token", ["", "garbage", "x" * 43])
def test_unknown_invitation_token_is_404(token: str, client: Client, tenant: Tenant) -> None:
    assert client.get(f"/invite/{token}/").status_code == 404


def test_weak_password_on_acceptance_gets_field_error(tenant: Tenant, member: Membership, client: Client) -> None:
    token = _invite(tenant, member)

    response = client.post(reverse("tenants:accept_invitation", args=[token]), {"password1": "123", "password2": "123"})

    assert response.status_code == 200
    assert not User.objects.filter(email="new@example.com").exists()
    assert response.context["form"].errors["password1"]


def test_last_owner_cannot_be_demoted_or_removed(tenant: Tenant, member: Membership) -> None:
    with pytest.raises(ConflictError):
        services.change_member_role(tenant=tenant, actor=member.user, actor_membership=member, membership=member, role=Role.ADMIN)
    with pytest.raises(ConflictError):
        services.remove_member(tenant=tenant, actor=member.user, actor_membership=member, membership=member)
    member.refresh_from_db()
    assert member.role == Role.OWNER


def test_owner_can_hand_over_and_leave(tenant: Tenant, member: Membership, make_member: Callable) -> None:
    successor = make_member(Role.ADMIN)

    services.change_member_role(tenant=tenant, actor=member.user, actor_membership=member, membership=successor, role=Role.OWNER)
    services.remove_member(tenant=tenant, actor=member.user, actor_membership=member, membership=member)

    assert list(Membership.objects.for_tenant(tenant).values_list("role", flat=True)) == [Role.OWNER]
    actions = set(AuditLog.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"member.role_changed", "member.removed"} <= actions


def test_inviting_an_existing_member_is_a_conflict(tenant: Tenant, member: Membership) -> None:
    with pytest.raises(ConflictError) as info:
        _invite(tenant, member, member.user.email)
    assert info.value.field == "email"


def test_marketer_cannot_invite(tenant: Tenant, make_member: Callable) -> None:
    marketer = make_member(Role.MARKETER)
    with pytest.raises(ForbiddenError):
        _invite(tenant, marketer)


def test_unknown_role_is_a_field_error(tenant: Tenant, member: Membership) -> None:
    with pytest.raises(DomainError) as info:
        _invite(tenant, member, role="emperor")
    assert info.value.field == "role"


def test_invite_form_shows_field_errors(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.post(reverse("tenants:members", args=[tenant.slug]), {"email": "not-an-email", "role": "viewer"})

    assert response.status_code == 400
    assert response.context["form"].errors["email"]


def test_members_page_lists_only_this_tenants_members(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    body = dashboard_client.get(reverse("tenants:members", args=[tenant.slug])).content.decode()

    assert "owner@acme.example" in body
    assert "owner@other.example" not in body
