"""The consent ledger: append-only entries; the current state is the latest per channel/purpose."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.timezone import now

from b2p_platform.exceptions import DomainError
from customers.models import Consent, Customer
from customers.segments import freshness
from tenants.models import Tenant


@transaction.atomic
def record_consent(
    *,
    tenant: Tenant,
    customer: Customer,
    channel: str,
    purpose: str,
    status: str,
    source: str,
    source_detail: str = "",
    text_version: str = "",
    ip: str | None = None,
    occurred_at: datetime | None = None,
) -> Consent:
    if customer.tenant_id != tenant.pk:
        raise DomainError("Unknown customer.")
    if customer.is_erased:
        raise DomainError("This customer was erased.")
    for name, value, choices in (("channel", channel, Consent.Channel), ("purpose", purpose, Consent.Purpose),
                                 ("status", status, Consent.Status), ("source", source, Consent.Source)):
        if value not in choices.values:
            raise DomainError(f"Choose one of {', '.join(choices.values)}.", field=name)
    entry = Consent.objects.create(
        tenant=tenant, customer=customer, channel=channel, purpose=purpose, status=status, source=source,
        source_detail=source_detail[:200], text_version=text_version[:64], ip=ip, occurred_at=occurred_at or now(),
    )
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[customer.pk], kinds=["consent"])
    return entry


def current_consents(*, tenant: Tenant, customer: Customer) -> dict[tuple[str, str], Consent]:
    """Latest entry per (channel, purpose)."""
    latest: dict[tuple[str, str], Consent] = {}
    for entry in Consent.objects.for_tenant(tenant).filter(customer=customer).order_by("occurred_at", "id"):
        latest[(entry.channel, entry.purpose)] = entry
    return latest


def consent_state(*, tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    return [
        {"channel": c.channel, "purpose": c.purpose, "status": c.status, "since": c.occurred_at, "source": c.source,
         "text_version": c.text_version}
        for (_ch, _pu), c in sorted(current_consents(tenant=tenant, customer=customer).items())
    ]


def allows_in(state: Mapping[tuple[str, str], Any], *, channel: str, purpose: str) -> bool:
    """The rule, over a customer's latest entries: a purpose-wide entry (channel "all") applies to
    every channel; the most recent relevant entry wins; no entry at all means no consent."""
    candidates = [c for key, c in state.items() if key in ((channel, purpose), (Consent.Channel.ALL, purpose))]
    return bool(candidates) and max(candidates, key=lambda c: (c.occurred_at, c.id)).status == Consent.Status.GRANTED


def withdrew_in(state: Mapping[tuple[str, str], Any], *, purpose: str) -> bool:
    """The latest entry for the purpose, on any channel, is a withdrawal."""
    entries = [c for (_channel, p), c in state.items() if p == purpose]
    return bool(entries) and max(entries, key=lambda c: (c.occurred_at, c.id)).status == Consent.Status.WITHDRAWN


def allows(*, tenant: Tenant, customer: Customer, channel: str, purpose: str) -> bool:
    """Is this use allowed now? (see allows_in)"""
    return allows_in(current_consents(tenant=tenant, customer=customer), channel=channel, purpose=purpose)


def opted_out_of_personalization(*, tenant: Tenant, customer: Customer) -> bool:
    """"Don't personalize me": the latest personalization entry is a withdrawal."""
    return withdrew_in(current_consents(tenant=tenant, customer=customer), purpose=Consent.Purpose.PERSONALIZATION)


def customers_who_withdrew(*, tenant: Tenant, purposes: Iterable[str]) -> QuerySet[Consent]:
    """Ids (`customer_id` values) of the tenant's customers whose latest entry for any of these
    purposes is a withdrawal: the whole-tenant form of `withdrew_in`, as one query."""
    entries = Consent.objects.for_tenant(tenant)
    later = entries.filter(customer_id=OuterRef("customer_id"), purpose=OuterRef("purpose")).filter(
        Q(occurred_at__gt=OuterRef("occurred_at")) | Q(occurred_at=OuterRef("occurred_at"), id__gt=OuterRef("id")))
    withdrawn = entries.filter(purpose__in=list(purposes), status=Consent.Status.WITHDRAWN).filter(~Exists(later))
    return withdrawn.values_list("customer_id", flat=True).distinct()
