"""Reads for customer pages and endpoints. Every function takes the tenant first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from customers.models import AttributeDefinition, Company, Consent, Customer, Event, LeadForm, Order, OrderLine
from tenants.models import Tenant

TIMELINE_LIMIT = 50


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""
    kind: str = ""
    tag: str = ""
    attribute: str = ""  # key=value
    company_id: int | None = None
    segment_id: int | None = None
    include_erased: bool = False


def list_customers(*, tenant: Tenant, filters: CustomerFilters | None = None) -> QuerySet[Customer]:
    """Newest first; callers page with keysets on id (never OFFSET, never COUNT)."""
    filters = filters or CustomerFilters()
    customers = Customer.objects.for_tenant(tenant).select_related("company")
    if not filters.include_erased:
        customers = customers.active()
    if filters.kind:
        customers = customers.filter(kind=filters.kind)
    if filters.tag:
        customers = customers.with_tag(filters.tag.strip().lower())
    if filters.attribute and "=" in filters.attribute:
        key, value = filters.attribute.split("=", 1)
        customers = customers.with_attribute(key.strip(), typed_attribute_value(tenant=tenant, key=key.strip(), value=value.strip()))
    if filters.company_id:
        customers = customers.filter(company_id=filters.company_id)
    if filters.segment_id:
        from customers.models import SegmentMembership

        members = SegmentMembership.objects.for_tenant(tenant).filter(segment_id=filters.segment_id).values("customer_id")
        customers = customers.filter(pk__in=members)
    if filters.q:
        customers = customers.search(filters.q)
    return customers.order_by("-id")


def typed_attribute_value(*, tenant: Tenant, key: str, value: str) -> Any:
    """Filter values typed like the attribute's definition, so "42" finds the number 42."""
    definition = AttributeDefinition.objects.for_tenant(tenant).filter(key=key).first()
    if definition is None:
        return value
    if definition.type == AttributeDefinition.Type.NUMBER:
        try:
            number = float(value)
            return int(number) if number.is_integer() else number
        except ValueError:
            return value
    if definition.type == AttributeDefinition.Type.BOOLEAN:
        return value.lower() in ("true", "1", "yes", "да")
    return value


def get_customer(*, tenant: Tenant, customer_id: int) -> Customer:
    return get_object_or_404(Customer.objects.for_tenant(tenant).select_related("company"), pk=customer_id)


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # event, order, consent
    obj: Any


def customer_timeline(*, tenant: Tenant, customer: Customer, before: datetime | None = None, limit: int = TIMELINE_LIMIT) -> list[TimelineItem]:
    """Events, orders and consent changes, newest first, merged from three index range scans."""
    events = Event.objects.for_tenant(tenant).filter(customer=customer)
    orders = Order.objects.for_tenant(tenant).filter(customer=customer)
    consents = Consent.objects.for_tenant(tenant).filter(customer=customer)
    if before is not None:
        events, orders, consents = events.filter(occurred_at__lt=before), orders.filter(ordered_at__lt=before), consents.filter(occurred_at__lt=before)
    items = [TimelineItem(e.occurred_at, "event", e) for e in events.order_by("-occurred_at")[:limit]]
    order_list = list(orders.order_by("-ordered_at")[:limit])
    lines: dict[int, list[OrderLine]] = {}
    for line in OrderLine.objects.for_tenant(tenant).filter(order__in=order_list):
        lines.setdefault(line.order_id, []).append(line)
    for order in order_list:
        order.line_list = lines.get(order.pk, [])  # type: ignore[attr-defined]
        items.append(TimelineItem(order.ordered_at, "order", order))
    items += [TimelineItem(c.occurred_at, "consent", c) for c in consents.order_by("-occurred_at")[:limit]]
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]


def customer_order_summary(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    from django.db.models import Count, Max, Sum

    revenue = Order.objects.for_tenant(tenant).filter(customer=customer, status__in=Order.REVENUE_STATUSES)
    return revenue.aggregate(orders=Count("id"), revenue=Sum("total"), last_order_at=Max("ordered_at"))


def list_companies(*, tenant: Tenant, q: str = "") -> QuerySet[Company]:
    companies = Company.objects.for_tenant(tenant)
    if q:
        companies = companies.filter(name__icontains=q.strip())
    return companies.order_by("-id")


def get_company(*, tenant: Tenant, company_id: int) -> Company:
    return get_object_or_404(Company.objects.for_tenant(tenant), pk=company_id)


def list_attribute_definitions(*, tenant: Tenant) -> QuerySet[AttributeDefinition]:
    return AttributeDefinition.objects.for_tenant(tenant).order_by("key")


def get_attribute_definition(*, tenant: Tenant, attribute_id: int) -> AttributeDefinition:
    return get_object_or_404(AttributeDefinition.objects.for_tenant(tenant), pk=attribute_id)


def list_lead_forms(*, tenant: Tenant) -> QuerySet[LeadForm]:
    return LeadForm.objects.for_tenant(tenant).order_by("name")
