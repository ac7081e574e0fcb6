"""Tenants, members, API keys, audit log and jobs: the rules.

- A tenant always keeps at least one owner; only owners grant, change or remove the owner role.
- Secrets (API keys, invitation tokens) are random, shown once, and stored only as SHA-256.
  They are high-entropy, so a fast hash is safe and keeps per-request key checks cheap.
- The audit log is append-only; every member, role, key and sign-in change writes one entry.
- Jobs are enqueued only after the transaction that created their JobRun commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from b2p_platform.exceptions import ConflictError, DomainError, ForbiddenError
from tenants.jobs import get_handler
from tenants.models import ApiKey, AuditLog, Invitation, JobRun, Membership, Tenant, User
from tenants.roles import Perm, Role

API_KEY_PREFIX = "b2p_"
# Who did it: a member, an API key, a label for someone outside the team (a customer acting in
# the portal), or None for the system itself.
Actor = User | ApiKey | str | None

# Resources an API key can be scoped to; "read" or "write" on each ("write" includes "read").
API_RESOURCES = (
    "customers",
    "events",
    "orders",
    "offers",
    "recommendations",
    "segments",
    "campaigns",
    "surveys",
    "metrics",
    "jobs",
    "webhooks",
)
API_SCOPES = tuple(f"{r}:{a}" for r in API_RESOURCES for a in ("read", "write"))


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def actor_label(actor: Actor) -> str:
    """How an actor is named in the audit log and in request histories."""
    if isinstance(actor, User):
        return actor.email
    if isinstance(actor, ApiKey):
        return f"api-key:{actor.prefix}"
    if isinstance(actor, str) and actor:
        return actor[:254]
    return "system"


def record_audit(
    *,
    tenant: Tenant | None,
    actor: Actor,
    action: str,
    target: Any = None,
    metadata: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        tenant=tenant,
        actor=actor if isinstance(actor, User) else None,
        actor_label=actor_label(actor),
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        metadata=metadata or {},
        ip=ip,
    )


# Tenants -----------------------------------------------------------------------------------


@transaction.atomic
def create_tenant(
    *,
    name: str,
    slug: str,
    owner_email: str,
    owner_password: str | None = None,
    actor: Actor = None,
    locale: str = "en",
    timezone_name: str = "UTC",
    currency: str = "EUR",
) -> tuple[Tenant, User]:
    """A tenant with its first owner; the owner account is created when the email is new."""
    if Tenant.objects.filter(slug=slug).exists():
        raise ConflictError(_("A tenant with this slug already exists."), field="slug")
    tenant = Tenant(name=name, slug=slug, locale=locale, timezone=timezone_name, currency=currency)
    tenant.full_clean()
    tenant.save()
    email = User.objects.normalize_email(owner_email).lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=owner_password)
    Membership.objects.create(tenant=tenant, user=user, role=Role.OWNER)
    record_audit(tenant=tenant, actor=actor, action="tenant.created", target=tenant, metadata={"owner": email})
    return tenant, user


@transaction.atomic
def update_tenant_settings(*, tenant: Tenant, actor: Actor, ip: str | None = None, **fields: Any) -> Tenant:
    allowed = {"name", "locale", "timezone", "currency", "brand_color", "logo", "event_retention_days"}
    unknown = set(fields) - allowed
    if unknown:
        raise DomainError(_("Unknown settings: %(names)s") % {"names": ", ".join(sorted(unknown))})
    changed = {k: str(v) for k, v in fields.items() if getattr(tenant, k) != v}
    for key, value in fields.items():
        setattr(tenant, key, value)
    tenant.full_clean()
    tenant.save()
    if changed:
        record_audit(tenant=tenant, actor=actor, action="tenant.settings_changed", target=tenant, metadata=changed, ip=ip)
    return tenant


# Members -------------------------------------------------------------------------------------


def _require(membership: Membership, perm: Perm) -> None:
    if not membership.can(perm):
        raise ForbiddenError(_("Your role does not allow this."))


def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).count()


@transaction.atomic
def invite_member(
    *, tenant: Tenant, actor: User, actor_membership: Membership, email: str, role: str, ip: str | None = None
) -> tuple[Invitation, str]:
    """Invite by email; returns the invitation and the raw token (emailed, never stored)."""
    _require(actor_membership, Perm.MANAGE_MEMBERS)
    if role not in Role.values:
        raise DomainError(_("Unknown role."), field="role")
    if role == Role.OWNER:
        _require(actor_membership, Perm.MANAGE_OWNERS)
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.for_tenant(tenant).filter(user__email=email).exists():
        raise ConflictError(_("This person is already a member."), field="email")
    # A new invitation replaces any pending one for the same address.
    Invitation.objects.for_tenant(tenant).filter(
        email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=hash_secret(token),
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    record_audit(tenant=tenant, actor=actor, action="member.invited", target=invitation, metadata={"email": email, "role": role}, ip=ip)
    transaction.on_commit(partial(_send_invitation_email, invitation_id=invitation.pk, token=token))
    return invitation, token


def _send_invitation_email(*, invitation_id: int, token: str) -> None:
    invitation = Invitation.objects.unscoped().select_related("tenant", "invited_by").get(pk=invitation_id)
    url = settings.SITE_URL.rstrip("/") + reverse("tenants:accept_invitation", args=[token])
    with translation.override(invitation.tenant.locale):
        context = {"invitation": invitation, "url": url, "tenant": invitation.tenant}
        send_mail(
            subject=_("You are invited to %(tenant)s on B2P Engage") % {"tenant": invitation.tenant.name},
            message=render_to_string("tenants/email/invitation.txt", context),
            from_email=None,
            recipient_list=[invitation.email],
        )


def get_pending_invitation(*, token: str) -> Invitation | None:
    # Looked up by the token alone: the invitee is not yet a member of any tenant.
    invitation = Invitation.objects.unscoped().select_related("tenant").filter(token_hash=hash_secret(token)).first()
    if invitation is None or not invitation.is_pending or not invitation.tenant.is_active:
        return None
    return invitation


@transaction.atomic
def accept_invitation(
    *, token: str, user: User | None = None, full_name: str = "", password: str | None = None, ip: str | None = None
) -> Membership:
    """Join the tenant. A signed-in user must hold the invited address; otherwise an account is made."""
    invitation = get_pending_invitation(token=token)
    if invitation is None:
        raise DomainError(_("This invitation is invalid, used or expired."))
    invitation = Invitation.objects.unscoped().select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise DomainError(_("This invitation is invalid, used or expired."))
    if user is None or not user.is_authenticated:
        user = User.objects.filter(email=invitation.email).first()
        if user is not None:
            raise DomainError(_("An account with this email exists: sign in first, then open the link again."))
        if not password:
            raise DomainError(_("Choose a password."), field="password")
        user = User.objects.create_user(email=invitation.email, password=password, full_name=full_name)
    elif user.email != invitation.email:
        raise ForbiddenError(_("This invitation was sent to another email address."))
    try:
        with transaction.atomic():
            membership = Membership.objects.create(tenant=invitation.tenant, user=user, role=invitation.role)
    except IntegrityError as exc:
        raise ConflictError(_("You are already a member of this tenant.")) from exc
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    record_audit(tenant=invitation.tenant, actor=user, action="member.joined", target=membership, metadata={"role": invitation.role}, ip=ip)
    return membership


@transaction.atomic
def revoke_invitation(
    *, tenant: Tenant, actor: User, actor_membership: Membership, invitation: Invitation, ip: str | None = None
) -> None:
    _require(actor_membership, Perm.MANAGE_MEMBERS)
    if invitation.revoked_at or invitation.accepted_at:
        return
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    record_audit(tenant=tenant, actor=actor, action="invitation.revoked", target=invitation, ip=ip)


@transaction.atomic
def change_member_role(
    *, tenant: Tenant, actor: User, actor_membership: Membership, membership: Membership, role: str, ip: str | None = None
) -> Membership:
    _require(actor_membership, Perm.MANAGE_MEMBERS)
    if role not in Role.values:
        raise DomainError(_("Unknown role."), field="role")
    if Role.OWNER in (role, membership.role):
        _require(actor_membership, Perm.MANAGE_OWNERS)
    # Lock the owners: two owners demoting each other at once must not leave none.
    locked = list(Membership.objects.for_tenant(tenant).select_for_update().filter(Q(role=Role.OWNER) | Q(pk=membership.pk)))
    current = next(m for m in locked if m.pk == membership.pk)
    if current.role == Role.OWNER and role != Role.OWNER and sum(m.role == Role.OWNER for m in locked) <= 1:
        raise ConflictError(_("A tenant needs at least one owner."), field="role")
    old = current.role
    current.role = role
    current.save(update_fields=["role"])
    record_audit(tenant=tenant, actor=actor, action="member.role_changed", target=current, metadata={"from": old, "to": role}, ip=ip)
    return current


@transaction.atomic
def remove_member(
    *, tenant: Tenant, actor: User, actor_membership: Membership, membership: Membership, ip: str | None = None
) -> None:
    is_self = membership.user_id == actor.pk
    if not is_self:
        _require(actor_membership, Perm.MANAGE_MEMBERS)
        if membership.role == Role.OWNER:
            _require(actor_membership, Perm.MANAGE_OWNERS)
    locked = list(Membership.objects.for_tenant(tenant).select_for_update().filter(Q(role=Role.OWNER) | Q(pk=membership.pk)))
    current = next((m for m in locked if m.pk == membership.pk), None)
    if current is None:
        return
    if current.role == Role.OWNER and sum(m.role == Role.OWNER for m in locked) <= 1:
        raise ConflictError(_("A tenant needs at least one owner."))
    record_audit(tenant=tenant, actor=actor, action="member.removed", target=current, metadata={"email": current.user.email, "role": current.role}, ip=ip)
    current.delete()


# Accounts ------------------------------------------------------------------------------------


def set_user_language(*, user: User, language: str) -> None:
    if language not in dict(settings.LANGUAGES):
        raise DomainError(_("Unknown language."), field="language")
    User.objects.filter(pk=user.pk).update(language=language)
    user.language = language


# API keys ------------------------------------------------------------------------------------


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(API_SCOPES))
    if unknown:
        raise DomainError(_("Unknown scopes: %(scopes)s") % {"scopes": ", ".join(unknown)}, field="scopes")
    if not scopes:
        raise DomainError(_("Choose at least one scope."), field="scopes")
    return sorted(set(scopes))


@transaction.atomic
def create_api_key(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    scopes: list[str],
    rate_limit: str = "",
    actor_membership: Membership | None = None,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the raw secret, which is never stored or shown again."""
    if actor_membership is not None:
        _require(actor_membership, Perm.MANAGE_API_KEYS)
    scopes = validate_scopes(scopes)
    public_id = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}{public_id}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        tenant=tenant,
        name=name.strip() or _("Unnamed key"),
        prefix=public_id,
        key_hash=hash_secret(raw_key),
        scopes=scopes,
        rate_limit=rate_limit,
        created_by=actor if isinstance(actor, User) else None,
    )
    try:
        api_key.full_clean(exclude=["tenant", "created_by", "revoked_by"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(messages[0], field=field) from exc
    api_key.save()
    record_audit(tenant=tenant, actor=actor, action="api_key.created", target=api_key, metadata={"scopes": scopes}, ip=ip)
    return api_key, raw_key


@transaction.atomic
def revoke_api_key(
    *, tenant: Tenant, actor: Actor, api_key: ApiKey, actor_membership: Membership | None = None, ip: str | None = None
) -> ApiKey:
    if actor_membership is not None:
        _require(actor_membership, Perm.MANAGE_API_KEYS)
    updated = ApiKey.objects.for_tenant(tenant).filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor if isinstance(actor, User) else None
    )
    if updated:
        record_audit(tenant=tenant, actor=actor, action="api_key.revoked", target=api_key, ip=ip)
    api_key.refresh_from_db()
    return api_key


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """The active key for a raw secret, or None. Touches last_used_at at most once a minute."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    public_id, sep, _secret = raw_key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not public_id:
        return None
    # Looked up by its public prefix before any tenant is known: the key is what names the tenant.
    api_key = ApiKey.objects.unscoped().select_related("tenant").filter(prefix=public_id).first()
    if api_key is None or not secrets.compare_digest(api_key.key_hash, hash_secret(raw_key)):
        return None
    if api_key.revoked_at is not None or not api_key.tenant.is_active:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
        # Conditional update: under load only one request a minute per key writes.
        ApiKey.objects.unscoped().filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_allows(api_key: ApiKey, resource: str, write: bool) -> bool:
    needed = f"{resource}:write" if write else f"{resource}:read"
    return needed in api_key.scopes or (not write and f"{resource}:write" in api_key.scopes)


# Jobs ------------------------------------------------------------------------------------------


@transaction.atomic
def start_job(
    *, tenant: Tenant, actor: Actor, kind: str, params: dict[str, Any] | None = None, actor_membership: Membership | None = None
) -> JobRun:
    """Create a queued JobRun and enqueue it once the transaction commits."""
    from tenants import tasks

    handler = get_handler(kind)
    if handler is None:
        raise DomainError(_("Unknown job kind."), field="kind")
    if actor_membership is not None:
        _require(actor_membership, handler.permission)
    job = JobRun.objects.create(
        tenant=tenant, kind=kind, params=params or {}, created_by=actor if isinstance(actor, User) else None
    )
    record_audit(tenant=tenant, actor=actor, action="job.started", target=job, metadata={"kind": kind})
    transaction.on_commit(partial(tasks.run_job.delay, tenant_id=tenant.pk, job_id=job.pk))
    return job


def run_job(*, tenant: Tenant, job_id: int) -> JobRun | None:
    """Run a queued job once; a redelivered message for a started job does nothing."""
    from tenants.jobs import JobContext

    with transaction.atomic():
        claimed = JobRun.objects.for_tenant(tenant).filter(pk=job_id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
        )
    job = JobRun.objects.for_tenant(tenant).filter(pk=job_id).first()
    if not claimed or job is None:
        return job
    handler = get_handler(job.kind)
    context = JobContext(job=job, tenant=tenant)
    try:
        if handler is None:
            raise DomainError(f"no handler for job kind {job.kind!r}")
        result = handler.func(context) or {}
    except Exception as exc:
        context.fail(exc)
        if not isinstance(exc, DomainError):
            raise
        return job
    context.succeed(result)
    return job


def fail_stalled_jobs(*, older_than: timedelta | None = None) -> int:
    """Mark running jobs whose worker stopped reporting as failed (a crashed or killed worker)."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.JOB_STALL_AFTER_SECONDS))
    # Platform maintenance across every tenant, run by beat.
    return JobRun.objects.unscoped().filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobRun.Status.FAILED,
        finished_at=timezone.now(),
        error="The worker stopped reporting progress; the job was marked failed.",
    )
