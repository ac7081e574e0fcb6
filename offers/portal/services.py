"""The portal's writes. The rules:

- Sign-in is by an emailed link only. Asking for a link answers the same whether or not the
  address belongs to a customer of this tenant (no account enumeration), and in the same time:
  the request only queues one task, for every address; the task (a worker, after commit) looks
  the address up and, for a non-erased customer of *this* tenant only, stores a link and emails it.
- A link stores only the SHA-256 of a random token, works once, for LINK_TTL, and only under its
  own tenant's slug (the lookup is scoped to the tenant the URL names). The raw token is made
  inside the task and goes only into the email: never into a broker message, a log or a row.
- Requests for links are rate-limited per IP and address, and per IP (cache counters over a
  fixed window), so the form can be used neither to flood an inbox nor to probe many addresses.
- Preferences append to the consent ledger (source "portal") only what changed.
- Deleting the account erases the person (customers.services.erase_customer) and their links.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.timezone import now
from django.utils.translation import gettext as _

from b2p_platform.exceptions import DomainError
from customers import services as customer_services
from customers.models import Consent, Customer
from offers import tasks
from offers.models import PortalSignInLink
from offers.portal import selectors
from tenants.models import Tenant
from tenants.services import hash_secret

LINK_TTL = timedelta(minutes=15)
RATE_WINDOW_SECONDS = 15 * 60
RATE_LIMIT_PER_ADDRESS = 5  # link requests per IP and address in the window ...
RATE_LIMIT_PER_IP = 30  # ... and per IP, whatever the addresses
PORTAL_LANGUAGES = ("en", "ru")


class LinkInvalid(DomainError):
    """Unknown or tampered token, one of another tenant, or one of a person erased since."""

    status_code = 404
    code = "link_invalid"


class LinkGone(DomainError):
    """The link was used already or has expired."""

    status_code = 410
    code = "link_gone"


# Sign-in links ---------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def _count(key: str) -> int:
    cache.add(key, 0, RATE_WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # the window ended between add() and incr()
        cache.set(key, 1, RATE_WINDOW_SECONDS)
        return 1


def allow_link_request(*, tenant: Tenant, email: str, ip: str | None) -> bool:
    """Count one request for a link; False once this IP asked too often for this address, or at all."""
    # The address is hashed: cache keys end up in logs and monitoring.
    address = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    per_address = _count(f"t{tenant.pk}:portal-link-rate:{ip or 'unknown'}:{address}")
    per_ip = _count(f"t{tenant.pk}:portal-link-rate-ip:{ip or 'unknown'}")
    return per_address <= RATE_LIMIT_PER_ADDRESS and per_ip <= RATE_LIMIT_PER_IP


def request_sign_in_link(*, tenant: Tenant, email: str, language: str = "") -> None:
    """Queue the sign-in email for this address (after commit), whoever it belongs to."""
    address = normalize_email(email)
    if not address:
        return
    # No lookup here: finding the customer, writing the link and talking to the mail server all
    # happen in the task, so a known address costs the request exactly what an unknown one does.
    # kwargsrepr keeps the address out of the worker's log lines and monitoring events.
    transaction.on_commit(partial(
        tasks.send_sign_in_link.apply_async,
        kwargs={"tenant_id": tenant.pk, "email": address, "language": language},
        kwargsrepr=repr({"tenant_id": tenant.pk, "email": "…", "language": language}),
    ))


def sign_in_url(*, tenant: Tenant, token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("portal:link", kwargs={"tenant_slug": tenant.slug, "token": token})


def send_sign_in_link(*, tenant: Tenant, email: str, language: str = "") -> bool:
    """The task's work: if a non-erased customer of this tenant has the address, store a new link
    and email it (True); otherwise do nothing (False)."""
    address = normalize_email(email)
    customer = Customer.objects.for_tenant(tenant).filter(email=address, erased_at__isnull=True).first() if address else None
    if customer is None:
        return False
    token = secrets.token_urlsafe(32)
    link = PortalSignInLink.objects.create(tenant=tenant, customer=customer, token_hash=hash_secret(token),
                                           expires_at=now() + LINK_TTL)
    try:
        _email_sign_in_link(tenant=tenant, customer=customer, token=token, language=language)
    except Exception:
        # Never delivered, so never usable: drop it. The task retries with a fresh link.
        link.delete()
        raise
    return True


def _email_sign_in_link(*, tenant: Tenant, customer: Customer, token: str, language: str) -> None:
    language = language if language in PORTAL_LANGUAGES else selectors.customer_language(tenant=tenant, customer=customer)
    with translation.override(language):
        context = {"tenant": tenant, "url": sign_in_url(tenant=tenant, token=token),
                   "valid_minutes": int(LINK_TTL.total_seconds() // 60)}
        send_mail(
            subject=_("Your sign-in link for %(tenant)s") % {"tenant": tenant.name},
            message=render_to_string("portal/email/sign_in_link.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[customer.email],
        )


def _check_usable(link: PortalSignInLink | None) -> PortalSignInLink:
    if link is None or link.customer.is_erased:
        raise LinkInvalid(_("This sign-in link is not valid."))
    if link.used_at is not None:
        raise LinkGone(_("This sign-in link was used already."))
    if link.expires_at <= now():
        raise LinkGone(_("This sign-in link has expired."))
    return link


def get_usable_link(*, tenant: Tenant, token: str) -> PortalSignInLink:
    """The link a token names, without using it up (mail scanners open links too)."""
    return _check_usable(
        PortalSignInLink.objects.for_tenant(tenant).select_related("customer").filter(token_hash=hash_secret(token)).first()
    )


@transaction.atomic
def use_sign_in_link(*, tenant: Tenant, token: str) -> Customer:
    """Use a link once: the customer it signs in."""
    # Lock the row: a double click sends two sign-ins at once; only one may use the link.
    link = _check_usable(
        PortalSignInLink.objects.for_tenant(tenant).select_for_update(of=("self",)).select_related("customer")
        .filter(token_hash=hash_secret(token)).first()
    )
    link.used_at = now()
    link.save(update_fields=["used_at"])
    return link.customer


def purge_expired_sign_in_links(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Links long expired or used say only that someone signed in: delete them. Platform maintenance."""
    deleted, _ = PortalSignInLink.objects.unscoped().filter(expires_at__lt=now() - older_than).delete()
    return deleted


# Preferences -----------------------------------------------------------------------------------


@transaction.atomic
def update_preferences(
    *, tenant: Tenant, customer: Customer, marketing: dict[str, bool], personalization: bool, ip: str | None = None
) -> list[Consent]:
    """Append a consent entry (source "portal") for each choice that differs from the current state."""
    current = selectors.get_preferences(tenant=tenant, customer=customer)
    entries: list[Consent] = []
    moment = now()

    def record(channel: str, purpose: str, granted: bool) -> None:
        entries.append(customer_services.record_consent(
            tenant=tenant, customer=customer, channel=channel, purpose=purpose,
            status=Consent.Status.GRANTED if granted else Consent.Status.WITHDRAWN,
            source=Consent.Source.PORTAL, source_detail="portal preferences", ip=ip, occurred_at=moment,
        ))

    for channel in selectors.MARKETING_CHANNELS:
        wanted = bool(marketing.get(channel, False))
        if wanted != current.marketing[channel]:
            record(channel, Consent.Purpose.MARKETING, wanted)
    if personalization != current.personalization:
        # Channel "all": personalization is about the person, not a channel; the latest entry decides.
        record(Consent.Channel.ALL, Consent.Purpose.PERSONALIZATION, personalization)
    return entries


def set_customer_language(*, tenant: Tenant, customer: Customer, language: str) -> Customer:
    if language not in PORTAL_LANGUAGES:
        raise DomainError(_("Choose English or Russian."), field="language")
    if customer.locale == language:
        return customer
    return customer_services.update_customer(tenant=tenant, customer=customer, data={"locale": language})


# Account ---------------------------------------------------------------------------------------


@transaction.atomic
def delete_account(*, tenant: Tenant, customer: Customer, ip: str | None = None) -> Customer:
    """The person deletes themselves: erase them everywhere and drop their sign-in links."""
    erased = customer_services.erase_customer(tenant=tenant, actor=f"portal:{customer.pk}", customer=customer, ip=ip)
    PortalSignInLink.objects.for_tenant(tenant).filter(customer=customer).delete()
    return erased
