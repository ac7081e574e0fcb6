"""Lead capture: tenant-configured forms, public sign-ups and double opt-in. The rules:

- A form always asks for the email address (required) and, as the tenant chooses, a fixed set of
  profile fields and the tenant's defined custom attributes. Confirming grants the form's
  purposes on the email channel.
- A changed consent text needs a new version: the consent ledger records the version, so two
  texts must never share one.
- A sign-up stores only itself (email, answers, IP, the consent text version and purposes shown)
  and the SHA-256 of a random single-use token, which is emailed after commit. Nothing else
  happens until the person confirms; then the customer is upserted by email (an existing person
  keeps their external_id) and one consent entry per purpose is appended.
- A confirmation link works once, within LINK_TTL, and only under its own tenant's slug.
- Erased people are neither re-created nor contacted: a sign-up for a tombstoned address is
  answered like any other and dropped; a confirmation for one stores nothing.
- Sign-ups are rate-limited per IP and form (a cache counter over a fixed window).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from b2p_platform.exceptions import ConflictError, DomainError
from customers.intake import RowInvalid, clean_customer
from customers.models import Consent, Customer, LeadForm, LeadSubmission
from customers.services import attribute_definitions, identifier_hash, record_consent, upsert_customers
from customers.services.profiles import erased_identifiers
from tenants.models import Tenant
from tenants.services import Actor, hash_secret, record_audit

logger = logging.getLogger(__name__)

LINK_TTL = timedelta(days=7)
SUBMISSION_RATE_LIMIT = 5  # sign-ups per IP and form ...
SUBMISSION_RATE_WINDOW_SECONDS = 10 * 60  # ... in this window
LIST_LIMIT = 200
CONSENT_CHANNEL = Consent.Channel.EMAIL
ATTRIBUTE_PREFIX = "attributes."

# The profile fields a form may ask for: key -> (label, input type). Email is always asked.
PROFILE_FIELDS: dict[str, tuple[Promise, str]] = {
    "email": (gettext_lazy("Email"), "email"),
    "first_name": (gettext_lazy("First name"), "text"),
    "last_name": (gettext_lazy("Last name"), "text"),
    "phone": (gettext_lazy("Phone"), "tel"),
    "company": (gettext_lazy("Company"), "text"),
    "company_role": (gettext_lazy("Role at the company"), "text"),
}


class LinkInvalid(DomainError):
    """Unknown or tampered token, or one of another tenant."""

    status_code = 404
    code = "link_invalid"


class LinkGone(DomainError):
    """The link was used already or has expired."""

    status_code = 410
    code = "link_gone"


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ERASED = "erased"  # the person had asked to be erased: nothing was stored


@dataclass(frozen=True)
class FieldSpec:
    key: str  # "email", "first_name", ... or "attributes.<key>"
    label: str | Promise
    type: str  # email, text, tel, or an attribute type: string, number, boolean, date, choice
    required: bool
    choices: tuple[str, ...] = ()

    @property
    def is_attribute(self) -> bool:
        return self.key.startswith(ATTRIBUTE_PREFIX)


# Reads -------------------------------------------------------------------------------------------


def list_lead_forms(*, tenant: Tenant) -> list[LeadForm]:
    """Forms newest first, each with `submission_count` and `confirmed_count` (one aggregate query)."""
    forms = list(LeadForm.objects.for_tenant(tenant).order_by("-created_at", "-pk")[:LIST_LIMIT])
    counts = {
        row["form_id"]: row
        for row in LeadSubmission.objects.for_tenant(tenant)
        .filter(form_id__in=[f.pk for f in forms])
        .values("form_id")
        .annotate(total=Count("id"), confirmed=Count("id", filter=Q(confirmed_at__isnull=False)))
    }
    for form in forms:
        row = counts.get(form.pk, {})
        form.submission_count = row.get("total", 0)  # type: ignore[attr-defined]
        form.confirmed_count = row.get("confirmed", 0)  # type: ignore[attr-defined]
    return forms


def get_lead_form(*, tenant: Tenant, form_id: int) -> LeadForm:
    return get_object_or_404(LeadForm.objects.for_tenant(tenant), pk=form_id)


def get_public_form(*, tenant: Tenant, slug: str) -> LeadForm:
    """The active form with this slug; an inactive one is a 404 like a missing one."""
    return get_object_or_404(LeadForm.objects.for_tenant(tenant), slug=slug, is_active=True)


def list_submissions(*, tenant: Tenant, form: LeadForm) -> QuerySet[LeadSubmission]:
    """Newest first; callers page with keysets on id."""
    return LeadSubmission.objects.for_tenant(tenant).filter(form=form).order_by("-pk")


def field_choices(*, tenant: Tenant) -> list[tuple[str, str | Promise]]:
    """The fields a form may ask for besides the email: profile fields, then defined attributes."""
    choices: list[tuple[str, str | Promise]] = [(key, label) for key, (label, _type) in PROFILE_FIELDS.items() if key != "email"]
    choices += [(f"{ATTRIBUTE_PREFIX}{d.key}", d.label) for d in attribute_definitions(tenant=tenant).values()]
    return choices


def resolve_fields(*, tenant: Tenant, form: LeadForm) -> list[FieldSpec]:
    """The form's fields as asked now: email first; attributes take their current definition, and
    one whose definition was removed is no longer asked."""
    definitions = attribute_definitions(tenant=tenant)
    specs = [FieldSpec("email", PROFILE_FIELDS["email"][0], "email", required=True)]
    seen = {"email"}
    for raw in form.fields or []:
        key = str(raw.get("key", "")) if isinstance(raw, dict) else ""
        if not key or key in seen:
            continue
        seen.add(key)
        required = bool(raw.get("required"))
        if key in PROFILE_FIELDS:
            label, input_type = PROFILE_FIELDS[key]
            specs.append(FieldSpec(key, label, input_type, required))
        elif key.startswith(ATTRIBUTE_PREFIX) and (definition := definitions.get(key[len(ATTRIBUTE_PREFIX):])):
            specs.append(FieldSpec(key, definition.label, definition.type, required, tuple(map(str, definition.choices))))
    return specs


# Forms (dashboard) -------------------------------------------------------------------------------


def _field_specs(tenant: Tenant, shown: list[str], required: list[str]) -> list[dict[str, Any]]:
    """The JSON stored in LeadForm.fields. Email is always first and required; a required field is
    shown even when not ticked as shown."""
    definitions = attribute_definitions(tenant=tenant)
    wanted = set(shown) | set(required)
    unknown = sorted(
        k for k in wanted
        if k not in PROFILE_FIELDS and not (k.startswith(ATTRIBUTE_PREFIX) and k[len(ATTRIBUTE_PREFIX):] in definitions)
    )
    if unknown:
        raise DomainError(_("Unknown fields: %(keys)s") % {"keys": ", ".join(unknown)}, field="shown_fields")
    ordered = [k for k in PROFILE_FIELDS if k in wanted or k == "email"]
    ordered += [k for k in dict.fromkeys([*shown, *required]) if k.startswith(ATTRIBUTE_PREFIX)]
    with translation.override("en"):
        return [
            {
                "key": key,
                "label": str(PROFILE_FIELDS[key][0]) if key in PROFILE_FIELDS else definitions[key[len(ATTRIBUTE_PREFIX):]].label,
                "type": PROFILE_FIELDS[key][1] if key in PROFILE_FIELDS else definitions[key[len(ATTRIBUTE_PREFIX):]].type,
                "required": key == "email" or key in required,
            }
            for key in ordered
        ]


def _clean_purposes(purposes: list[str]) -> list[str]:
    unknown = set(purposes) - set(Consent.Purpose.values)
    if unknown or not purposes:
        raise DomainError(_("Choose at least one purpose."), field="consent_purposes")
    return [p for p in Consent.Purpose.values if p in purposes]


def _normalize_text(text: str) -> str:
    # Browsers send textarea line breaks as CRLF: an untouched text must not count as changed.
    return text.replace("\r\n", "\n").strip()


def _save_form(tenant: Tenant, form: LeadForm) -> LeadForm:
    if LeadForm.objects.for_tenant(tenant).filter(slug=form.slug).exclude(pk=form.pk).exists():
        raise ConflictError(_("Another form of this workspace uses this slug."), field="slug")
    try:
        form.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise DomainError(messages[0], field=name) from exc
    try:
        with transaction.atomic():
            form.save()
    except IntegrityError as exc:  # the same slug saved at the same moment by someone else
        raise ConflictError(_("Another form of this workspace uses this slug."), field="slug") from exc
    return form


def _assign(
    tenant: Tenant,
    form: LeadForm,
    *,
    name: str,
    slug: str,
    shown_fields: list[str],
    required_fields: list[str],
    consent_text: str,
    consent_version: str,
    consent_purposes: list[str],
    success_message: str = "",
    is_active: bool = True,
) -> LeadForm:
    """Normalise and set a form's editable fields (create and update share this)."""
    form.name, form.slug = name.strip(), slug.strip()
    form.fields = _field_specs(tenant, shown_fields, required_fields)
    form.consent_text, form.consent_version = _normalize_text(consent_text), consent_version.strip()
    form.consent_purposes = _clean_purposes(consent_purposes)
    form.success_message, form.is_active = success_message.strip(), is_active
    return form


@transaction.atomic
def create_lead_form(*, tenant: Tenant, actor: Actor, ip: str | None = None, **fields: Any) -> LeadForm:
    form = _assign(tenant, LeadForm(tenant=tenant), **fields)
    _save_form(tenant, form)
    record_audit(tenant=tenant, actor=actor, action="leadform.created", target=form, metadata={"slug": form.slug}, ip=ip)
    return form


@transaction.atomic
def update_lead_form(*, tenant: Tenant, actor: Actor, form: LeadForm, ip: str | None = None, **fields: Any) -> LeadForm:
    form = LeadForm.objects.for_tenant(tenant).select_for_update().get(pk=form.pk)
    old_text, old_version = _normalize_text(form.consent_text), form.consent_version
    before = {"slug": form.slug, "consent_version": form.consent_version, "is_active": form.is_active}
    _assign(tenant, form, **fields)
    if form.consent_text != old_text and form.consent_version == old_version:
        raise DomainError(
            _("The consent text changed: give it a new version, so that the consent records tell the texts apart."),
            field="consent_version",
        )
    _save_form(tenant, form)
    changed = {k: [str(v), str(getattr(form, k))] for k, v in before.items() if getattr(form, k) != v}
    record_audit(tenant=tenant, actor=actor, action="leadform.updated", target=form, metadata=changed, ip=ip)
    return form


@transaction.atomic
def deactivate_lead_form(*, tenant: Tenant, actor: Actor, form: LeadForm, ip: str | None = None) -> LeadForm:
    """Stop accepting sign-ups; links already emailed still confirm (the person agreed while it was live)."""
    updated = LeadForm.objects.for_tenant(tenant).filter(pk=form.pk, is_active=True).update(is_active=False)
    form.is_active = False
    if updated:
        record_audit(tenant=tenant, actor=actor, action="leadform.deactivated", target=form, ip=ip)
    return form


# Sign-ups (public) -------------------------------------------------------------------------------


def allow_submission(*, tenant: Tenant, form: LeadForm, ip: str | None) -> bool:
    """Count one attempt; False once this IP made more than SUBMISSION_RATE_LIMIT on this form in the window."""
    key = f"t{tenant.pk}:leadform-rate:{form.pk}:{ip or 'unknown'}"
    cache.add(key, 0, SUBMISSION_RATE_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # the window ended between add() and incr()
        cache.set(key, 1, SUBMISSION_RATE_WINDOW_SECONDS)
        count = 1
    return count <= SUBMISSION_RATE_LIMIT


def _is_erased(tenant: Tenant, email: str) -> bool:
    return identifier_hash(tenant, "email", email) in erased_identifiers(tenant=tenant, rows=[{"email": email}])


def _row_from_values(specs: list[FieldSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Answers keyed by field key -> a customer row as `clean_customer` reads it; blanks left out."""
    row: dict[str, Any] = {}
    for spec in specs:
        value = values.get(spec.key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if spec.is_attribute:
            row.setdefault("attributes", {})[spec.key[len(ATTRIBUTE_PREFIX):]] = value
        else:
            row[spec.key] = value
    return row


def _answered_keys(row: dict[str, Any]) -> set[str]:
    """Field keys that have an answer in a customer row."""
    return {k for k in row if k != "attributes"} | {f"{ATTRIBUTE_PREFIX}{k}" for k in row.get("attributes", {})}


def _field_key(error_key: str) -> str:
    """An intake error key ("company.name", "attributes.plan") -> the form field it is about."""
    if error_key.startswith(ATTRIBUTE_PREFIX):
        return error_key
    return error_key.split(".", 1)[0]


@transaction.atomic
def submit_lead(
    *, tenant: Tenant, form: LeadForm, values: dict[str, Any], ip: str | None = None, locale: str = ""
) -> tuple[LeadSubmission | None, str]:
    """Store a sign-up and email its confirmation link after commit. Returns the submission and the
    raw token (never stored); (None, "") when the address belongs to an erased person."""
    if form.tenant_id != tenant.pk or not form.is_active:
        raise DomainError(_("This form does not accept sign-ups."))
    specs = resolve_fields(tenant=tenant, form=form)
    row = _row_from_values(specs, values)
    missing = {spec.key: ["This field is required."] for spec in specs if spec.required and spec.key not in _answered_keys(row)}
    if missing:
        raise RowInvalid(missing)
    try:
        cleaned = clean_customer(row, definitions=attribute_definitions(tenant=tenant), partial=True)
    except RowInvalid as exc:
        raise RowInvalid({_field_key(k): v for k, v in exc.errors.items()}) from exc
    email = cleaned.pop("email")
    if _is_erased(tenant, email):
        return None, ""
    token = secrets.token_urlsafe(32)
    submission = LeadSubmission.objects.create(
        tenant=tenant, form=form, email=email, token_hash=hash_secret(token), ip=ip,
        data={
            "fields": cleaned,
            "consent": {"version": form.consent_version, "purposes": list(form.consent_purposes)},
            "locale": locale,
        },
    )
    transaction.on_commit(partial(_send_confirmation_email, tenant_id=tenant.pk, submission_id=submission.pk, token=token))
    return submission, token


def confirmation_url(*, tenant: Tenant, token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("leadforms:confirm", kwargs={"tenant_slug": tenant.slug, "token": token})


def _send_confirmation_email(*, tenant_id: int, submission_id: int, token: str) -> None:
    submission = LeadSubmission.objects.for_tenant(tenant_id).select_related("form", "tenant").filter(pk=submission_id).first()
    if submission is None or not submission.email:
        return
    tenant = submission.tenant
    language = submission.data.get("locale") or tenant.locale
    with translation.override(language):
        context = {"tenant": tenant, "form": submission.form, "url": confirmation_url(tenant=tenant, token=token),
                   "valid_days": LINK_TTL.days}
        try:
            send_mail(
                subject=_("Confirm your sign-up with %(tenant)s") % {"tenant": tenant.name},
                message=render_to_string("customers/email/lead_confirm.txt", context),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[submission.email],
            )
        except Exception:
            # The sign-up is committed and the visitor already sees "check your inbox"; a mail
            # outage must not turn that into an error page. They can sign up again.
            logger.exception("lead confirmation email failed", extra={"tenant_id": tenant_id, "submission_id": submission_id})


# Confirmation (public) ---------------------------------------------------------------------------


def _check_usable(submission: LeadSubmission | None) -> LeadSubmission:
    if submission is None:
        raise LinkInvalid(_("This link is not valid."))
    if submission.confirmed_at is not None:
        raise LinkGone(_("This link was used already."))
    if submission.created_at < now() - LINK_TTL:
        raise LinkGone(_("This link has expired."))
    return submission


def get_confirmable_submission(*, tenant: Tenant, token: str) -> LeadSubmission:
    """The pending sign-up a link names, without using it up (mail scanners fetch links too)."""
    return _check_usable(
        LeadSubmission.objects.for_tenant(tenant).select_related("form").filter(token_hash=hash_secret(token)).first()
    )


@transaction.atomic
def confirm_lead(*, tenant: Tenant, token: str, ip: str | None = None) -> tuple[ConfirmOutcome, LeadSubmission]:
    """Use a confirmation link once: upsert the customer by email and append the consent entries."""
    # Lock the row: a double click sends two confirmations at once; only one may pass.
    submission = _check_usable(
        LeadSubmission.objects.for_tenant(tenant).select_for_update().filter(token_hash=hash_secret(token)).first()
    )
    form = LeadForm.objects.for_tenant(tenant).get(pk=submission.form_id)
    customer = None
    if submission.email and not _is_erased(tenant, submission.email):
        customer = _upsert_lead_customer(tenant, submission)
    if customer is None:
        # Erased since the sign-up (or their phone was): store nothing and forget the sign-up's details too.
        LeadSubmission.objects.for_tenant(tenant).filter(pk=submission.pk).update(email="", data={}, ip=None)
        return ConfirmOutcome.ERASED, submission
    consent = submission.data.get("consent") or {}
    moment = now()
    for purpose in consent.get("purposes", form.consent_purposes):
        record_consent(
            tenant=tenant, customer=customer, channel=CONSENT_CHANNEL, purpose=purpose, status=Consent.Status.GRANTED,
            source=Consent.Source.FORM, source_detail=form.slug, text_version=consent.get("version", form.consent_version),
            ip=ip, occurred_at=moment,
        )
    submission.confirmed_at = moment
    submission.customer = customer
    submission.save(update_fields=["confirmed_at", "customer"])
    return ConfirmOutcome.CONFIRMED, submission


def _new_external_id(tenant: Tenant, email: str) -> str:
    # Deterministic, so two confirmations racing for one new address collide on the unique
    # index instead of creating two people; a clash with an unrelated id gets a random suffix.
    candidate = "lead-" + hashlib.sha256(email.encode()).hexdigest()[:16]
    if Customer.objects.for_tenant(tenant).filter(external_id=candidate).exists():
        candidate = f"{candidate}-{secrets.token_hex(4)}"
    return candidate


def _upsert_lead_customer(tenant: Tenant, submission: LeadSubmission) -> Customer | None:
    try:
        with transaction.atomic():
            return _upsert_once(tenant, submission)
    except IntegrityError:
        # Another confirmation for the same new address created the customer first; now it is found by email.
        return _upsert_once(tenant, submission)


def _upsert_once(tenant: Tenant, submission: LeadSubmission) -> Customer | None:
    existing = Customer.objects.for_tenant(tenant).filter(email=submission.email).first()
    identity: dict[str, Any] = {"email": submission.email}
    if existing is not None:
        identity["external_id"] = existing.external_id  # a known person keeps their id
    else:
        identity["external_id"] = _new_external_id(tenant, submission.email)
        if submission.data.get("locale"):
            identity["locale"] = submission.data["locale"]
    answers = submission.data.get("fields") or {}
    # The answers were valid at sign-up; if one is not any more (an attribute's definition changed
    # meanwhile), keep the person and their consent rather than lose both.
    for row in ({**answers, **identity}, identity):
        result = upsert_customers(tenant=tenant, rows=[row], source="form")
        if not result.errors:
            return result.objects[0]
        if "non_field_errors" in result.errors[0]:
            return None  # one of the identifiers belongs to an erased person
    raise DomainError(_("This sign-up could not be stored."))


def purge_unconfirmed_submissions(*, older_than: timedelta = LINK_TTL * 4) -> int:
    """Sign-ups nobody confirmed hold an email and an IP the person never agreed to keep:
    delete them once their link has long expired. Platform maintenance across tenants."""
    deleted, _ = LeadSubmission.objects.unscoped().filter(confirmed_at__isnull=True, created_at__lt=now() - older_than).delete()
    return deleted
