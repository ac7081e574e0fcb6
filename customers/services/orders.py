"""Orders with lines, idempotent by external_id: re-sending an order updates only what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.timezone import now

from customers.intake import MAX_BATCH, RowInvalid, clean_order
from customers.models import Order, OrderLine
from customers.segments import freshness
from customers.services.events import resolve_customer_refs
from tenants.models import Tenant


@dataclass
class OrdersResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[int, Order] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "rejected": self.rejected}


@transaction.atomic
def record_orders(*, tenant: Tenant, rows: list[Any], source: str = "api") -> OrdersResult:
    if len(rows) > MAX_BATCH:
        raise RowInvalid({"orders": [f"At most {MAX_BATCH} orders per request."]})
    result = OrdersResult()
    cleaned: dict[int, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        try:
            order = clean_order(raw, default_currency=tenant.currency)
        except RowInvalid as exc:
            result.rejected.append({"index": index, "errors": exc.errors})
            continue
        if order["external_id"] in seen:
            result.rejected.append({"index": index, "errors": {"external_id": [f"Duplicate of row {seen[order['external_id']]} in this batch."]}})
            continue
        seen[order["external_id"]] = index
        cleaned[index] = order
    customer_ids = resolve_customer_refs(tenant=tenant, rows=cleaned, result_rejected=result.rejected)
    existing = {o.external_id: o for o in Order.objects.for_tenant(tenant).filter(external_id__in=[cleaned[i]["external_id"] for i in customer_ids])}
    new_orders: list[tuple[int, Order, list[dict[str, Any]]]] = []
    changed: list[Order] = []
    moment = now()
    for index in sorted(customer_ids):
        data = cleaned[index]
        order = existing.get(data["external_id"])
        if order is None:
            order = Order(tenant=tenant, customer_id=customer_ids[index], external_id=data["external_id"], status=data["status"],
                          currency=data["currency"], total=data["total"], ordered_at=data["ordered_at"], source=source,
                          created_at=moment, updated_at=moment)
            new_orders.append((index, order, data["lines"]))
        elif order.customer_id != customer_ids[index]:
            result.rejected.append({"index": index, "errors": {"external_id": ["This order id belongs to another customer."]}})
            continue
        elif (order.status, order.total, order.currency, order.ordered_at) != (data["status"], data["total"], data["currency"], data["ordered_at"]):
            order.status, order.total, order.currency, order.ordered_at = data["status"], data["total"], data["currency"], data["ordered_at"]
            order.updated_at = moment
            changed.append(order)
        else:
            result.unchanged += 1
        result.orders[index] = order
    if new_orders:
        Order.objects.bulk_create([o for _i, o, _l in new_orders], batch_size=500)
        OrderLine.objects.bulk_create(
            [OrderLine(tenant=tenant, order=o, product_sku=line["sku"], product_name=line["name"], quantity=line["quantity"],
                       unit_price=line["unit_price"]) for _i, o, lines in new_orders for line in lines],
            batch_size=1000,
        )
        result.created = len(new_orders)
    if changed:
        Order.objects.for_tenant(tenant).bulk_update(changed, ["status", "total", "currency", "ordered_at", "updated_at"], batch_size=500)
        result.updated = len(changed)
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[o.customer_id for _i, o, _l in new_orders] + [o.customer_id for o in changed],
                                kinds=["order"])
    result.rejected.sort(key=lambda r: r["index"])
    return result
