"""Data-subject rights: export everything held about one person; erase them everywhere.

Erasure anonymises instead of deleting rows, so counts, revenue and conversion figures stay
right: the profile loses every identifier, events lose their properties, consent entries lose
their IP. Hashes of the identifiers are kept as tombstones, so that a later import or API call
does not bring the person back.

Other apps add what they hold about a person with `register_export_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils.timezone import now

from customers.models import (
    Consent,
    Customer,
    CustomerScore,
    ErasureTombstone,
    Event,
    LeadSubmission,
    Order,
    OrderLine,
    SegmentChange,
    SegmentMembership,
)
from customers.segments import freshness
from customers.services.profiles import identifier_hash
from tenants.models import Tenant
from tenants.services import Actor, record_audit

ExportSection = Callable[[Tenant, Customer], Any]
_SECTIONS: dict[str, ExportSection] = {}
EXPORT_EVENT_LIMIT = 100_000


def register_export_section(name: str) -> Callable[[ExportSection], ExportSection]:
    def decorator(func: ExportSection) -> ExportSection:
        _SECTIONS[name] = func
        return func

    return decorator


def export_customer(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    return {"exported_at": now().isoformat(), "tenant": tenant.slug, **{name: f(tenant, customer) for name, f in _SECTIONS.items()}}


@register_export_section("profile")
def _profile(tenant: Tenant, customer: Customer) -> dict[str, Any]:
    company = customer.company
    return {
        "id": customer.pk, "external_id": customer.external_id, "kind": customer.kind, "email": customer.email,
        "phone": customer.phone, "first_name": customer.first_name, "last_name": customer.last_name,
        "locale": customer.locale, "timezone": customer.timezone, "tags": customer.tags, "attributes": customer.attributes,
        "company": {"name": company.name, "industry": company.industry, "size": company.size} if company else None,
        "company_role": customer.company_role, "first_seen_at": customer.first_seen_at, "last_seen_at": customer.last_seen_at,
        "created_at": customer.created_at, "erased_at": customer.erased_at,
    }


@register_export_section("consents")
def _consents(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    return list(
        Consent.objects.for_tenant(tenant).filter(customer=customer).order_by("occurred_at", "id")
        .values("channel", "purpose", "status", "source", "source_detail", "text_version", "ip", "occurred_at")
    )


@register_export_section("events")
def _events(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    return list(
        Event.objects.for_tenant(tenant).filter(customer=customer).order_by("-occurred_at")
        .values("event_id", "type", "properties", "source", "occurred_at")[:EXPORT_EVENT_LIMIT]
    )


@register_export_section("orders")
def _orders(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    orders = list(Order.objects.for_tenant(tenant).filter(customer=customer).order_by("ordered_at"))
    lines: dict[int, list[dict[str, Any]]] = {}
    for line in OrderLine.objects.for_tenant(tenant).filter(order__in=orders).values("order_id", "product_sku", "product_name", "quantity", "unit_price"):
        lines.setdefault(line.pop("order_id"), []).append(line)
    return [
        {"external_id": o.external_id, "status": o.status, "currency": o.currency, "total": o.total, "ordered_at": o.ordered_at,
         "lines": lines.get(o.pk, [])}
        for o in orders
    ]


@register_export_section("lead_form_submissions")
def _submissions(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    if not customer.email:
        return []
    return list(
        LeadSubmission.objects.for_tenant(tenant).filter(email=customer.email).order_by("created_at")
        .values("form__name", "data", "created_at", "confirmed_at")
    )


@transaction.atomic
def erase_customer(*, tenant: Tenant, actor: Actor, customer: Customer, ip: str | None = None) -> Customer:
    """Anonymise a person everywhere; idempotent."""
    customer = Customer.objects.for_tenant(tenant).select_for_update().get(pk=customer.pk)
    if customer.is_erased:
        return customer
    tombstones = [
        ErasureTombstone(tenant=tenant, identifier_hash=identifier_hash(tenant, kind, value), kind=kind)
        for kind, value in (("email", customer.email), ("phone", customer.phone), ("external_id", customer.external_id))
        if value
    ]
    ErasureTombstone.objects.bulk_create(tombstones, ignore_conflicts=True)
    if customer.email:
        LeadSubmission.objects.for_tenant(tenant).filter(email=customer.email).update(email="", data={}, ip=None)
    Event.objects.for_tenant(tenant).filter(customer=customer).update(properties={})
    # The consent ledger is append-only for every purpose but this one: the IP is personal data.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_consent SET ip = NULL WHERE tenant_id = %s AND customer_id = %s", [tenant.pk, customer.pk])
    customer.external_id = f"erased-{customer.pk}"
    customer.email = customer.phone = customer.first_name = customer.last_name = customer.company_role = ""
    customer.tags, customer.attributes, customer.company = [], {}, None
    customer.search_text = ""
    customer.erased_at = customer.updated_at = now()
    customer.save()
    # Predictions about the person go; memberships leave through the normal refresh, which
    # writes their "left" history (every segment excludes erased people).
    CustomerScore.objects.for_tenant(tenant).filter(customer=customer).delete()
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[customer.pk], kinds=["*"])
    record_audit(tenant=tenant, actor=actor, action="customer.erased", target=customer, ip=ip)
    return customer


def purge_expired_events(*, tenant: Tenant, batch_size: int = 20_000) -> int:
    """Delete events older than the tenant's retention, in batches so locks stay short."""
    if not tenant.event_retention_days:
        return 0
    cutoff = now() - timedelta(days=tenant.event_retention_days)
    deleted = 0
    while True:
        ids = list(Event.objects.for_tenant(tenant).filter(occurred_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        count, _ = Event.objects.for_tenant(tenant).filter(pk__in=ids).delete()
        deleted += count


@register_export_section("segments")
def _segments(tenant: Tenant, customer: Customer) -> dict[str, Any]:
    current = SegmentMembership.objects.for_tenant(tenant).filter(customer=customer).order_by("entered_at")
    history = SegmentChange.objects.for_tenant(tenant).filter(customer=customer).order_by("at", "id")
    return {
        "current": list(current.values("segment__name", "entered_at")),
        "history": list(history.values("segment__name", "change", "at")),
    }


@register_export_section("predictions")
def _predictions(tenant: Tenant, customer: Customer) -> dict[str, Any] | None:
    score = CustomerScore.objects.for_tenant(tenant).filter(customer=customer).values(
        "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_group", "cluster",
        "churn_probability", "expected_purchases", "expected_value", "prob_alive", "updated_at").first()
    return score
