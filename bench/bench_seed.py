"""Seeding speed: N synthetic customers with ~10 events each (customers/seed.py) into the bench
tenant, against a raw COPY of the same event rows measured in this same run.

    python -m bench seed -- --customers 1000000      # or: python bench/bench_seed.py --customers 100000

The bench tenant's earlier data is deleted first (timed separately). The seeded tenant is left in
place, vacuumed and analysed, for the page benchmark.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

EVENT_COLUMNS = "tenant_id, customer_id, type, event_id, properties, source, occurred_at, received_at"
SEED_TABLES = ("customers_company", "customers_customer", "customers_order", "customers_orderline", "customers_event",
               "customers_consent")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events-per-customer", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2, help="parallel writers (server backends)")
    parser.add_argument("--baseline-rows", type=int, default=1_000_000, help="event rows in the raw COPY baseline")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    url = common.setup_django(args.database_url)
    from django.db import connection

    from customers import seed

    tenant, _owner = common.bench_tenant()
    print(f"bench database {url.rsplit('/', 1)[-1]}, tenant '{tenant.slug}'", flush=True)
    with common.timed() as reset:
        deleted = seed.delete_customer_data(tenant=tenant)
    counts = seed.seed_customers(tenant=tenant, customers=args.customers, seed=args.seed,
                                 events_per_customer=args.events_per_customer, workers=args.workers, stdout=sys.stdout)
    with common.timed() as vacuum, connection.cursor() as cursor:
        for table in SEED_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")

    rows = sum(counts[k] for k in ("customers", "companies", "orders", "order_lines", "events", "consents"))
    write = counts["write_seconds"]
    baseline = _copy_baseline(tenant.pk, min(args.baseline_rows, counts["events"]))
    # Per backend: seconds summed over the parallel writers, comparable with one COPY session.
    event_rate = counts["events"] / write["event"] if write.get("event") else 0.0
    figures: dict[str, Any] = {
        "customers": counts["customers"],
        "events": counts["events"],
        "orders": counts["orders"],
        "order_lines": counts["order_lines"],
        "consents": counts["consents"],
        "companies": counts["companies"],
        "rows": rows,
        "workers": counts["workers"],
        "seed_seconds": counts["seconds"],
        "rows_per_s": round(rows / counts["seconds"]),
        "customers_per_s": round(counts["customers"] / counts["seconds"]),
        "events_per_s_wall": round(counts["events"] / counts["seconds"]),
        "event_rows_per_s_per_backend": round(event_rate),
        "write_seconds_by_table": write,
        **baseline,
        "seed_vs_indexed_copy": round(event_rate / baseline["raw_copy_indexed_rows_per_s"], 2) if baseline else None,
        "reset_seconds": round(reset["seconds"], 1),
        "reset_deleted_customers": deleted,
        "vacuum_analyze_seconds": round(vacuum["seconds"], 1),
    }
    common.emit("seed", figures, as_json=args.json)
    return figures


def _copy_baseline(tenant_id: int, rows: int) -> dict[str, Any]:
    """The same event rows, exported, then COPYed (one session) into a bare table and into an
    empty copy of the event table with its indexes: the floor a seed can approach."""
    from django.db import connection, transaction

    if rows == 0:
        return {}
    buffer = io.StringIO()
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY (SELECT {EVENT_COLUMNS} FROM customers_event WHERE tenant_id = {int(tenant_id)} LIMIT {int(rows)}) "
            "TO STDOUT WITH (FORMAT csv)", buffer,
        )
    text = buffer.getvalue()
    figures: dict[str, Any] = {"baseline_rows": rows}
    for label, create in (
        ("bare", "CREATE UNLOGGED TABLE bench_event_copy (LIKE customers_event INCLUDING DEFAULTS INCLUDING IDENTITY)"),
        ("indexed", "CREATE TABLE bench_event_copy (LIKE customers_event INCLUDING ALL)"),
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_event_copy")
            cursor.execute(create)
            cursor.execute("SET LOCAL synchronous_commit = off")
            with common.timed() as t:
                cursor.cursor.copy_expert(f"COPY bench_event_copy ({EVENT_COLUMNS}) FROM STDIN WITH (FORMAT csv)", io.StringIO(text))
            cursor.execute("DROP TABLE bench_event_copy")
        figures[f"raw_copy_{label}_rows_per_s"] = round(rows / t["seconds"])
    return figures


if __name__ == "__main__":
    main()
