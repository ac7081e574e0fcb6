"""What the offers app holds about one person, added to the GDPR export (customers.services.gdpr)."""

from __future__ import annotations

from typing import Any

from customers.models import Customer
from customers.services.gdpr import register_export_section
from offers.models import Recommendation
from tenants.models import Tenant


@register_export_section("offer_requests")
def _offer_requests(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    from offers.portal.selectors import export_requests

    return export_requests(tenant=tenant, customer=customer)


@register_export_section("offers_recommended")
def _recommended(tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    rows = Recommendation.objects.for_tenant(tenant).filter(customer=customer).order_by("rank")
    return list(rows.values("offer__name", "rank", "score", "reason", "model", "created_at"))
