"""Roles and what each may do. The README's roles table is checked against PERMISSIONS by a test."""

from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MARKETER = "marketer", _("Marketer")
    ANALYST = "analyst", _("Analyst")
    VIEWER = "viewer", _("Viewer")


class Perm(StrEnum):
    VIEW = "view"  # see the dashboard: customers, segments, offers, campaigns, metrics, jobs
    EDIT_DATA = "edit_data"  # create and change customers, segments, offers, campaigns
    SEND_CAMPAIGNS = "send_campaigns"  # schedule and send campaigns
    RUN_JOBS = "run_jobs"  # start imports, rebuilds, model training
    EXPORT_DATA = "export_data"  # download exports of tenant data
    MANAGE_MEMBERS = "manage_members"  # invite and remove members, change roles
    MANAGE_API_KEYS = "manage_api_keys"  # create and revoke API keys
    MANAGE_SETTINGS = "manage_settings"  # tenant name, branding, locale
    VIEW_AUDIT_LOG = "view_audit_log"
    MANAGE_OWNERS = "manage_owners"  # grant or take away the owner role


_ALL = frozenset(Role)
PERMISSIONS: dict[Perm, frozenset[Role]] = {
    Perm.VIEW: _ALL,
    Perm.EDIT_DATA: frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    Perm.SEND_CAMPAIGNS: frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER}),
    Perm.RUN_JOBS: frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST}),
    Perm.EXPORT_DATA: frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST}),
    Perm.MANAGE_MEMBERS: frozenset({Role.OWNER, Role.ADMIN}),
    Perm.MANAGE_API_KEYS: frozenset({Role.OWNER, Role.ADMIN}),
    Perm.MANAGE_SETTINGS: frozenset({Role.OWNER, Role.ADMIN}),
    Perm.VIEW_AUDIT_LOG: frozenset({Role.OWNER, Role.ADMIN}),
    Perm.MANAGE_OWNERS: frozenset({Role.OWNER}),
}


def role_can(role: str, perm: Perm) -> bool:
    return role in PERMISSIONS[perm]
