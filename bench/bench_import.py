"""CSV import speed: customers, events and orders through the import job, against baselines measured in the same run.

    python -m bench import                 # or: python bench/bench_import.py [--customers 50000] [--events 100000]
    python bench/bench_import.py --kinds events orders   # only those (events then refer to unknown customers)
    python bench/bench_import.py --profile events   # that import under cProfile, top functions printed

Uses the bench database (bench/common.py: b2p_bench beside DATABASE_URL) and a throw-away tenant.
Generates the customer and event files; orders come from the Online Retail sample in
../shared/datasets (invoice lines grouped into orders, as the issue asks), skipped when it is
missing. Prints rows per second for:
- plain CSV parsing of the file (the floor of any Python importer);
- a raw COPY of the same rows into the real table, rolled back (the floor of the database with
  the table's indexes and constraints; customers go to a tenant of their own, and what the COPY
  leaves in the GIN pending lists is merged before the import is measured);
- the import job with the services stubbed out (what reading, mapping, validating and reporting cost alone);
- the import job (`customers_import`: the code the dashboard and `manage.py import_csv` run),
  first run (creates) and second run (the same file: nothing changes).
The target is 25,000 rows/s (listmonk imports about 10,000); each kind's first and second run
are compared with it.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import emit, setup_django  # noqa: E402

setup_django()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from tenants.jobs import JobContext  # noqa: E402
from tenants.models import JobRun, Tenant  # noqa: E402

TARGET = 25_000
CUSTOMER_MAPPING = {"external_id": "id", "email": "email", "first_name": "first name", "last_name": "last name", "tags": "tags",
                    "attributes.plan": "plan", "attributes.city": "city"}
EVENT_MAPPING = {"event_id": "event id", "customer_external_id": "customer", "type": "type", "occurred_at": "time",
                 "properties.page": "page"}
RETAIL = ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail_sample40k.csv"
RETAIL_MAPPING = {
    "external_id": "InvoiceNo", "customer_external_id": "CustomerID", "ordered_at": "InvoiceDate",
    "line.sku": "StockCode", "line.name": "Description", "line.quantity": "Quantity", "line.unit_price": "UnitPrice",
    "group_by": True, "cancelled_if_prefix": "C", "default_currency": "GBP", "integer_ids": True,
}
KINDS = ("customers", "events", "orders")
TENANT_TABLES = ("customers_orderline", "customers_order", "customers_event", "customers_consent", "customers_customer",
                 "customers_company", "customers_attributedefinition", "tenants_auditlog", "tenants_jobrun")


def write_files(directory: Path, customers: int, events: int, seed: int = 7) -> tuple[Path, Path]:
    rng = random.Random(seed)
    people = directory / "customers.csv"
    with people.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "email", "first name", "last name", "tags", "plan", "city"])
        for i in range(customers):
            writer.writerow([f"cust-{i}", f"person{i}@example.com", rng.choice(["Anna", "Boris", "Chen", "Dina"]),
                             f"Name{i}", rng.choice(["", "vip", "new,b2b"]), rng.choice(["prepaid", "postpaid"]),
                             rng.choice(["Berlin", "Moscow", "Lyon"])])
    stream = directory / "events.csv"
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with stream.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["event id", "customer", "type", "time", "page"])
        for i in range(events):
            moment = start + timedelta(seconds=i * 7)
            writer.writerow([f"ev-{i}", f"cust-{rng.randrange(customers)}", rng.choice(["page_view", "product_view", "add_to_cart"]),
                             moment.strftime("%Y-%m-%d %H:%M:%S"), rng.choice(["/", "/pricing", "/offers/1"])])
    return people, stream


def measure(label: str, rows: int, func: Any, results: list[tuple[str, int, float]]) -> Any:
    """Time func; also print the CPU seconds it took in this process (Python: both the reading and
    the writing thread) and in its database backend, which tell what bounds the run: one Python
    process takes one core at most, and its writer waits while the database works."""
    backend = _backend_pid()
    cpu_before, db_before = time.process_time(), _cpu_seconds(backend)
    started = time.perf_counter()
    value = func()
    seconds = time.perf_counter() - started
    python, database = time.process_time() - cpu_before, _cpu_seconds(backend) - db_before
    results.append((label, rows, seconds))
    split = f"  (CPU: Python {python:.2f} s, database {database:.2f} s)" if backend else ""
    print(f"  {label:<56} {rows:>8} rows {seconds:>7.2f} s {rows / seconds:>10,.0f} rows/s{split}", flush=True)
    return value


def _backend_pid() -> int | None:
    """This connection's PostgreSQL server process, if it runs on this machine (its CPU time is then readable)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the connection was replaced meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_only(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _row in csv.reader(f)) - 1


def copy_customers(tenant: Tenant, path: Path) -> None:
    """COPY the customer rows into customers_customer (all its indexes), then roll back. The tenant
    is one of their own: the import's unique checks must not meet the dead rows this leaves."""
    moment = timezone.now().isoformat()
    buffer = io.StringIO()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        out = csv.writer(buffer)
        for ext, email, first, last, tags, plan, city in reader:
            tag_list = "[" + ",".join(f'"{t}"' for t in tags.split(",") if t) + "]"
            out.writerow([tenant.pk, "consumer", ext, email, "", first, last, "", "", "", tag_list,
                          f'{{"plan": "{plan}", "city": "{city}"}}', f"{first} {last} {email} {ext}".lower(), moment, moment])
    buffer.seek(0)
    _copy_and_roll_back(
        "COPY customers_customer (tenant_id, kind, external_id, email, phone, first_name, last_name, locale, timezone, company_role, "
        "tags, attributes, search_text, created_at, updated_at) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (phone, locale, timezone, company_role))", buffer)


def copy_events(tenant: Tenant, path: Path) -> None:
    """COPY the event rows into customers_event (all its indexes), then roll back."""
    from customers.models import Customer

    ids = dict(Customer.objects.for_tenant(tenant).values_list("external_id", "id"))
    moment = timezone.now().isoformat()
    buffer = io.StringIO()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        out = csv.writer(buffer)
        for event_id, customer, kind, when, page in reader:
            out.writerow([tenant.pk, ids[customer], kind, event_id, f'{{"page": "{page}"}}', "import", when + "+00", moment])
    buffer.seek(0)
    _copy_and_roll_back(
        "COPY customers_event (tenant_id, customer_id, type, event_id, properties, source, occurred_at, received_at) "
        "FROM STDIN WITH (FORMAT csv)", buffer)


class _Rollback(Exception):
    pass


def flush_pending_lists(table: str) -> None:
    """Move what a rolled-back COPY left in the table's GIN pending lists into the indexes, outside
    the measurements. Those lists are not transactional: the next writer (the import measured
    next) would otherwise pay for merging entries of rows that never existed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = %s::regclass AND a.amname = 'gin'", [table])


def _copy_and_roll_back(sql: str, buffer: io.StringIO) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.cursor.copy_expert(sql, buffer)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred FK checks are part of the cost
            raise _Rollback
    except _Rollback:
        pass


def run_import(tenant: Tenant, kind: str, path: Path, mapping: dict[str, Any], *, rejected_ok: bool = False) -> dict[str, Any]:
    """The customers_import job, run in this process exactly as `manage.py import_csv` and the worker run it
    (segments are not refreshed chunk by chunk: the job queues one rebuild at the end, and this tenant has no segments)."""
    from customers import jobs

    moment = timezone.now()
    job = JobRun.objects.create(tenant=tenant, kind="customers_import", status=JobRun.Status.RUNNING, started_at=moment,
                                heartbeat_at=moment, params={"kind": kind, "mapping": mapping, "file_name": path.name})
    context = JobContext(job=job, tenant=tenant)
    result = jobs.import_csv(context, opener=lambda: path.open("rb"))
    context.succeed(result)
    assert rejected_ok or result["rejected"] == 0, result["errors"][:3]
    return result


def copy_orders(tenant: Tenant, path: Path) -> float:
    """COPY the Online Retail rows as orders and lines (the import's grouping, no validation) into
    customers_order and customers_orderline (all their indexes and foreign keys), then roll back."""
    from decimal import Decimal

    from customers.models import Customer

    ids = dict(Customer.objects.for_tenant(tenant).values_list("external_id", "id"))
    orders: dict[str, list[Any]] = {}
    lines: list[tuple[str, str, str, str, str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for invoice, sku, name, quantity, when, price, customer, _country in reader:
            customer = customer.split(".", 1)[0]
            if customer not in ids:
                continue
            order = orders.setdefault(invoice, [ids[customer], when + "+00", Decimal(0)])
            order[2] += Decimal(quantity) * Decimal(price)
            lines.append((invoice, sku, name.strip(), quantity, price))
    moment = timezone.now().isoformat()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('customers_order', 'id')) FROM generate_series(1, %s)", [len(orders)])
            order_ids = dict(zip(orders, (r[0] for r in cursor.fetchall()), strict=True))
            started = time.perf_counter()
            buffer = io.StringIO()
            csv.writer(buffer).writerows(
                (order_ids[invoice], tenant.pk, customer_id, f"copy-{invoice}", "paid", "GBP", round(total, 2), when, "import", moment, moment)
                for invoice, (customer_id, when, total) in orders.items())
            buffer.seek(0)
            cursor.cursor.copy_expert("COPY customers_order (id, tenant_id, customer_id, external_id, status, currency, total, ordered_at, "
                                      "source, created_at, updated_at) FROM STDIN WITH (FORMAT csv)", buffer)
            buffer = io.StringIO()
            csv.writer(buffer).writerows((tenant.pk, order_ids[invoice], sku, name, quantity, price) for invoice, sku, name, quantity, price in lines)
            buffer.seek(0)
            cursor.cursor.copy_expert("COPY customers_orderline (tenant_id, order_id, product_sku, product_name, quantity, unit_price) "
                                      "FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (product_name))", buffer)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred FK checks are part of the cost
            seconds = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        pass
    return seconds


def run_import_without_writers(tenant: Tenant, kind: str, path: Path, mapping: dict[str, Any]) -> dict[str, Any]:
    """The same job with the services replaced by no-ops: what reading, mapping, validating (in the reading thread) and reporting cost alone."""
    from unittest import mock

    from customers import services
    from customers.services import events

    with mock.patch.object(services, "upsert_customers", return_value=services.BatchResult()), \
            mock.patch.object(services, "ingest_events", return_value=services.IngestResult()), \
            mock.patch.object(events, "ingest_staged_events", return_value=services.IngestResult()), \
            mock.patch.object(services, "record_orders", return_value=services.OrdersResult()):
        return run_import(tenant, kind, path, mapping, rejected_ok=True)


def cleanup(tenant: Tenant) -> None:
    """Delete the throw-away tenant's rows. Deleting a customer makes PostgreSQL check every table
    that refers to it, and segment memberships, segment changes and scores index customer_id only
    after tenant_id (the product never deletes customers: erasure anonymises them): each check
    then scans those tables whole, hours for 50,000 customers once `bench segments` has filled
    them. This tenant never had such rows, so a superuser (the bench's usual role) skips the
    checks for this transaction; another role pays them."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:
            cursor.execute("SET LOCAL session_replication_role = replica")
        for table in TENANT_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM tenants_tenant WHERE id = %s", [tenant.pk])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--retail", type=Path, default=RETAIL, help="Online Retail-format file for the orders import")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="which imports to run (default: all)")
    parser.add_argument("--profile", choices=KINDS, help="run that import under cProfile and print the top")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()

    print(f"CSV import benchmark on {connection.vendor} {connection.settings_dict['NAME']} ({os.cpu_count()} CPUs); "
          f"target {TARGET:,} rows/s", flush=True)
    tenant = Tenant.objects.create(name="Import bench", slug=f"bench-import-{os.getpid()}", currency="EUR")
    scratch = Tenant.objects.create(name="Import bench (raw COPY)", slug=f"bench-import-copy-{os.getpid()}", currency="EUR")
    results: list[tuple[str, int, float]] = []
    profiler = cProfile.Profile() if args.profile else None

    def imported(kind: str, path: Path, mapping: dict[str, Any], rows: int, rejected_ok: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        if profiler and args.profile == kind:
            profiler.enable()
        first = measure(f"{kind}: import job, first run (creates)", rows,
                        lambda: run_import(tenant, kind, path, mapping, rejected_ok=rejected_ok), results)
        if profiler:
            profiler.disable()
        second = measure(f"{kind}: import job, same file again (changes nothing)", rows,
                         lambda: run_import(tenant, kind, path, mapping, rejected_ok=rejected_ok), results)
        return first, second

    try:
        with tempfile.TemporaryDirectory() as tmp:
            people, stream = write_files(Path(tmp), args.customers, args.events)
            if "customers" in args.kinds:
                measure("customers: baseline, csv parsing only", args.customers, lambda: parse_only(people), results)
                measure("customers: baseline, raw COPY into customers_customer", args.customers, lambda: copy_customers(scratch, people), results)
                flush_pending_lists("customers_customer")
                measure("customers: import job with the writers stubbed out", args.customers,
                        lambda: run_import_without_writers(tenant, "customers", people, CUSTOMER_MAPPING), results)
                first, second = imported("customers", people, CUSTOMER_MAPPING, args.customers)
                assert (first["created"], second["unchanged"]) == (args.customers, args.customers), (first, second)
            if "events" in args.kinds:
                measure("events: baseline, csv parsing only", args.events, lambda: parse_only(stream), results)
                if "customers" in args.kinds:  # the COPY needs the customers' ids
                    measure("events: baseline, raw COPY into customers_event", args.events, lambda: copy_events(tenant, stream), results)
                measure("events: import job with the writers stubbed out", args.events,
                        lambda: run_import_without_writers(tenant, "events", stream, EVENT_MAPPING), results)
                first, second = imported("events", stream, EVENT_MAPPING, args.events)
                assert (first["created"], second["duplicates"]) == (args.events, args.events), (first, second)
            if "orders" in args.kinds and args.retail.exists():
                rows = parse_only(args.retail)
                measure("orders: baseline, csv parsing only", rows, lambda: parse_only(args.retail), results)
                measure("orders: import job with the writers stubbed out", rows,
                        lambda: run_import_without_writers(tenant, "orders", args.retail, RETAIL_MAPPING), results)
                # Rows without a CustomerID are refused (an order must name its customer), as in the tests.
                first, second = imported("orders", args.retail, RETAIL_MAPPING, rows, rejected_ok=True)
                assert first["created"] > 0 and second["created"] == second["updated"] == 0, (first, second)
                print(f"  orders: {first['created']:,} orders with {first['lines']:,} lines; {first['rejected']:,} rows refused "
                      f"(no customer); second run: {second['unchanged']:,} unchanged", flush=True)
                seconds = copy_orders(tenant, args.retail)
                results.append(("orders: baseline, raw COPY of its orders and lines (rows of the file)", rows, seconds))
                print(f"  {'orders: baseline, raw COPY of its orders and lines':<56} {rows:>8} rows {seconds:>7.2f} s "
                      f"{rows / seconds:>10,.0f} rows/s", flush=True)
            elif "orders" in args.kinds:
                print(f"  orders: skipped, {args.retail} is missing", flush=True)
    finally:
        cleanup(tenant)
        cleanup(scratch)

    for label, rows, seconds in results:
        if "import job" in label and "stubbed" not in label:
            verdict = "meets" if rows / seconds >= TARGET else "is below"
            print(f"{label}: {rows / seconds:,.0f} rows/s {verdict} the {TARGET:,} rows/s target", flush=True)
    rates = {label: rows / seconds for label, rows, seconds in results}
    best = max(rate for label, rate in rates.items() if "import job" in label and "stubbed" not in label)
    figures: dict[str, Any] = {f"{label} (rows/s)": round(rate) for label, rate in rates.items()}
    # The rate of the database alone moves with the machine (twofold between sessions here); the
    # first run over the raw COPY of the same rows, measured a minute apart, moves much less.
    for kind in KINDS:
        copy = next((rate for label, rate in rates.items() if label.startswith(f"{kind}: baseline, raw COPY")), None)
        first = rates.get(f"{kind}: import job, first run (creates)")
        if copy and first:
            figures[f"{kind}: first run / raw COPY"] = round(first / copy, 2)
            print(f"{kind}: first run at {first / copy:.2f} of the raw COPY's rate", flush=True)
    emit("import", {**figures, "target (rows/s)": TARGET, "best import (rows/s)": round(best)}, as_json=args.json)
    if profiler:
        print(f"\ncProfile of the {args.profile} import (first run), top 30 by own time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(40)


if __name__ == "__main__":
    main()
