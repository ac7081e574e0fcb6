"""Orders with lines, idempotent by external_id: re-sending an order updates only what changed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils.timezone import now

from customers.intake import MAX_BATCH, RowInvalid, clean_order
from customers.models import Order, OrderLine
from customers.segments import freshness
from customers.services.events import empty_stage_now, resolve_customer_refs
from customers.services.profiles import model_values, rows_by_external_id, text_array
from tenants.models import Tenant


@dataclass
class OrdersResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[int, Order] = field(default_factory=dict)
    customer_ids: set[int] = field(default_factory=set)  # customers with an order created or changed by this batch
    new_customers: int = 0  # bare profiles created for unknown customer_external_ids

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "rejected": self.rejected}


# What re-sending an order may change; its lines are kept as first sent.
ORDER_STATE = ("status", "total", "currency", "ordered_at")


@transaction.atomic
def record_orders(*, tenant: Tenant, rows: list[Any], source: str = "api", with_objects: bool = True,
                  limit: int = MAX_BATCH, precleaned: list[dict[str, Any] | RowInvalid] | None = None) -> OrdersResult:
    """Create orders with their lines, or update status/total/currency/time of known ones (by
    external_id). `with_objects=False` (imports) skips loading them into `result.orders`; `limit`
    is the batch size allowed (the API's by default; imports write bigger chunks). `precleaned`
    is `clean_order`'s outcome for each row, in order (the order or its RowInvalid), when the
    caller has validated them already (imports do it on their reading thread, while this one writes)."""
    if len(rows) > limit:
        raise RowInvalid({"orders": [f"At most {limit} orders per request."]})
    if precleaned is not None and len(precleaned) != len(rows):
        raise ValueError("precleaned must hold one outcome per row")
    result = OrdersResult()
    cleaned: dict[int, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        try:
            outcome = clean_order(raw, default_currency=tenant.currency) if precleaned is None else precleaned[index]
            if isinstance(outcome, RowInvalid):
                raise outcome
            order = outcome
        except RowInvalid as exc:
            result.rejected.append({"index": index, "errors": exc.errors})
            continue
        if order["external_id"] in seen:
            result.rejected.append({"index": index, "errors": {"external_id": [f"Duplicate of row {seen[order['external_id']]} in this batch."]}})
            continue
        seen[order["external_id"]] = index
        cleaned[index] = order
    created_customers: set[int] = set()
    customer_ids = resolve_customer_refs(tenant=tenant, rows=cleaned, result_rejected=result.rejected, created=created_customers)
    result.new_customers = len(created_customers)
    existing = _orders_by_external_id(tenant, [cleaned[i]["external_id"] for i in customer_ids])
    new_orders: list[tuple[int, dict[str, Any], int]] = []
    changed: list[tuple[int, dict[str, Any]]] = []
    ids: dict[int, int] = {}
    for index in sorted(customer_ids):
        data = cleaned[index]
        old = existing.get(data["external_id"])
        if old is None:
            new_orders.append((index, data, customer_ids[index]))
        elif old["customer_id"] != customer_ids[index]:
            result.rejected.append({"index": index, "errors": {"external_id": ["This order id belongs to another customer."]}})
        elif tuple(old[f] for f in ORDER_STATE) != tuple(data[f] for f in ORDER_STATE):
            changed.append((index, {**old, **{f: data[f] for f in ORDER_STATE}}))
            ids[index] = old["id"]
        else:
            result.unchanged += 1
            ids[index] = old["id"]
    moment = now()
    if new_orders:
        created = _create_orders(tenant, [(data, customer_id) for _i, data, customer_id in new_orders], source, moment)
        for index, data, customer_id in new_orders:
            if data["external_id"] in created:
                ids[index] = created[data["external_id"]]
                result.created += 1
                result.customer_ids.add(customer_id)
            else:  # another request stored this order id between our read and the insert
                result.rejected.append({"index": index, "errors": {"external_id": ["Stored by another request meanwhile; send it again."]}})
    if changed:
        _update_orders(tenant, [state for _i, state in changed], moment)
        result.updated = len(changed)
        result.customer_ids.update(state["customer_id"] for _i, state in changed)
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=result.customer_ids, kinds=["order"])
    if with_objects and ids:
        loaded = Order.objects.for_tenant(tenant).in_bulk(list(ids.values()))
        result.orders = {index: loaded[pk] for index, pk in sorted(ids.items())}
    result.rejected.sort(key=lambda r: r["index"])
    return result


def _orders_by_external_id(tenant: Tenant, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not external_ids:
        return {}
    columns = ("id", "customer_id", *ORDER_STATE)
    if connection.vendor == "postgresql":
        return rows_by_external_id(tenant, "customers_order", columns, external_ids)
    return {values.pop("external_id"): values for values in
            Order.objects.for_tenant(tenant).filter(external_id__in=external_ids).values("external_id", *columns)}


def _create_orders(tenant: Tenant, items: list[tuple[dict[str, Any], int]], source: str, moment: datetime) -> dict[str, int]:
    """Insert new orders and their lines; ids by external_id of the orders inserted (an id another
    request stored meanwhile is skipped, with its lines, rather than failing the batch)."""
    if connection.vendor != "postgresql":
        orders = [(Order(tenant=tenant, customer_id=customer_id, external_id=data["external_id"], source=source, created_at=moment,
                         updated_at=moment, **{f: data[f] for f in ORDER_STATE}), data["lines"]) for data, customer_id in items]
        Order.objects.bulk_create([o for o, _lines in orders], batch_size=500)
        OrderLine.objects.bulk_create(
            [OrderLine(tenant=tenant, order=o, product_sku=line["sku"], product_name=line["name"], quantity=line["quantity"],
                       unit_price=line["unit_price"]) for o, lines in orders for line in lines],
            batch_size=1000,
        )
        return {o.external_id: o.pk for o, _lines in orders}
    order_columns, order_placeholders, order_values = model_values(
        Order, {"tenant_id": tenant.pk, "source": source, "created_at": moment, "updated_at": moment},
        exclude={"external_id", "customer_id", *ORDER_STATE},
    )
    line_columns, line_placeholders, line_values = model_values(
        OrderLine, {"tenant_id": tenant.pk}, exclude={"order_id", "product_sku", "product_name", "quantity", "unit_price"},
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_ORDER_STAGE} (external_id text, customer_id bigint, status text, currency text, "
            "total numeric, ordered_at timestamptz) ON COMMIT DELETE ROWS; "
            f"CREATE TEMP TABLE IF NOT EXISTS {_LINE_STAGE} (external_id text, product_sku text, product_name text, "
            "quantity numeric, unit_price numeric) ON COMMIT DELETE ROWS"
        )
        if empty_stage_now():
            cursor.execute(f"DELETE FROM {_ORDER_STAGE}; DELETE FROM {_LINE_STAGE}")  # noqa: S608 - constant table names
        _copy(cursor, _ORDER_STAGE, ((data["external_id"], customer_id, data["status"], data["currency"], data["total"],
                                      data["ordered_at"].isoformat()) for data, customer_id in items))
        _copy(cursor, _LINE_STAGE, ((data["external_id"], line["sku"], line["name"], line["quantity"], line["unit_price"])
                                    for data, _customer_id in items for line in data["lines"]), not_null="product_name")
        # One statement: the orders, then the lines of those orders that were inserted (joined on
        # the ids RETURNING gives), so an order skipped on conflict brings no lines with it.
        cursor.execute(
            f"WITH inserted AS (INSERT INTO customers_order ({', '.join(order_columns)}, external_id, customer_id, "  # noqa: S608 - names from the models
            f"{', '.join(ORDER_STATE)}) SELECT {', '.join(order_placeholders)}, external_id, customer_id, {', '.join(ORDER_STATE)} "
            f"FROM {_ORDER_STAGE} ON CONFLICT DO NOTHING RETURNING external_id, id), "
            f"lines AS (INSERT INTO customers_orderline ({', '.join(line_columns)}, order_id, product_sku, product_name, quantity, "
            f"unit_price) SELECT {', '.join(line_placeholders)}, i.id, l.product_sku, l.product_name, l.quantity, l.unit_price "
            f"FROM {_LINE_STAGE} AS l JOIN inserted AS i ON i.external_id = l.external_id) "
            "SELECT external_id, id FROM inserted",
            [*order_values, *line_values],
        )
        return dict(cursor.fetchall())


def _update_orders(tenant: Tenant, states: list[dict[str, Any]], moment: datetime) -> None:
    if connection.vendor != "postgresql":
        orders = [Order(pk=state["id"], tenant=tenant, updated_at=moment, **{f: state[f] for f in ORDER_STATE}) for state in states]
        Order.objects.for_tenant(tenant).bulk_update(orders, [*ORDER_STATE, "updated_at"], batch_size=500)
        return
    ids = "{" + ",".join(str(state["id"]) for state in states) + "}"
    with connection.cursor() as cursor:
        # c.id = ANY(...): the planner fetches the rows by primary key instead of hashing the tenant's orders.
        cursor.execute(
            "UPDATE customers_order AS o SET status = v.status, total = v.total, currency = v.currency, ordered_at = v.ordered_at, "
            "updated_at = %s FROM unnest(%s::bigint[], %s::text[], %s::numeric[], %s::text[], %s::timestamptz[]) "
            "AS v(id, status, total, currency, ordered_at) WHERE o.id = v.id AND o.id = ANY(%s::bigint[]) AND o.tenant_id = %s",
            [moment, ids, text_array(state["status"] for state in states), text_array(str(state["total"]) for state in states),
             text_array(state["currency"] for state in states), text_array(state["ordered_at"].isoformat() for state in states),
             ids, tenant.pk],
        )


_ORDER_STAGE = "order_stage"
_LINE_STAGE = "order_line_stage"


def _copy(cursor: Any, table: str, rows: Iterable[tuple[Any, ...]], not_null: str = "") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    # Unquoted empty fields are NULL in CSV; FORCE_NOT_NULL reads them as '' for text that may be empty.
    options = f", FORCE_NOT_NULL ({not_null})" if not_null else ""
    cursor.cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv{options})", buffer)
