"""CSV import speed: customers and events through the import job, against baselines measured in the same run.

    python -m bench import                 # or: python bench/bench_import.py [--customers 50000] [--events 100000]
    python bench/bench_import.py --profile events   # that import under cProfile, top functions printed

Uses the bench database (bench/common.py: b2p_bench beside DATABASE_URL) and a throw-away tenant.
Generates the files, then prints rows per second for:
- plain CSV parsing of the file (the floor of any Python importer);
- a raw COPY of the same rows into the real table, rolled back (the floor of the database with
  the table's indexes and constraints);
- the import job with the services stubbed out (what reading, mapping and reporting cost alone);
- the import job (`customers_import`: the code the dashboard and `manage.py import_csv` run),
  first run (creates) and second run (the same file: nothing changes).
The target is 25,000 rows/s (listmonk imports about 10,000).
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

from customers import imports  # noqa: E402
from tenants.jobs import JobContext  # noqa: E402
from tenants.models import JobRun, Tenant  # noqa: E402

TARGET = 25_000
CUSTOMER_MAPPING = {"external_id": "id", "email": "email", "first_name": "first name", "last_name": "last name", "tags": "tags",
                    "attributes.plan": "plan", "attributes.city": "city"}
EVENT_MAPPING = {"event_id": "event id", "customer_external_id": "customer", "type": "type", "occurred_at": "time",
                 "properties.page": "page"}
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
    started = time.perf_counter()
    value = func()
    seconds = time.perf_counter() - started
    results.append((label, rows, seconds))
    print(f"  {label:<56} {rows:>8} rows {seconds:>7.2f} s {rows / seconds:>10,.0f} rows/s", flush=True)
    return value


def parse_only(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _row in csv.reader(f)) - 1


def copy_customers(tenant: Tenant, path: Path) -> None:
    """COPY the customer rows into customers_customer (all its indexes), then roll back."""
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


def _copy_and_roll_back(sql: str, buffer: io.StringIO) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.cursor.copy_expert(sql, buffer)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred FK checks are part of the cost
            raise _Rollback
    except _Rollback:
        pass


def run_import(tenant: Tenant, kind: str, path: Path, mapping: dict[str, Any]) -> dict[str, Any]:
    """The customers_import job, run in this process exactly as `manage.py import_csv` runs it."""
    moment = timezone.now()
    job = JobRun.objects.create(tenant=tenant, kind="customers_import", status=JobRun.Status.RUNNING, started_at=moment,
                                heartbeat_at=moment, params={"kind": kind, "mapping": mapping, "file_name": path.name})
    context = JobContext(job=job, tenant=tenant)
    result = imports.run_import_job(context, opener=lambda: path.open("rb"))
    context.succeed(result)
    assert result["rejected"] == 0, result["errors"][:3]
    return result


def run_import_without_writers(tenant: Tenant, kind: str, path: Path, mapping: dict[str, Any]) -> dict[str, Any]:
    """The same job with the services replaced by no-ops: what reading, mapping and reporting cost alone."""
    from unittest import mock

    from customers import services

    with mock.patch.object(services, "upsert_customers", return_value=services.BatchResult()), \
            mock.patch.object(services, "ingest_events", return_value=services.IngestResult()):
        return run_import(tenant, kind, path, mapping)


def cleanup(tenant: Tenant) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in TENANT_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM tenants_tenant WHERE id = %s", [tenant.pk])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profile", choices=["customers", "events"], help="run that import under cProfile and print the top")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()

    print(f"CSV import benchmark on {connection.vendor} {connection.settings_dict['NAME']} ({os.cpu_count()} CPUs); "
          f"target {TARGET:,} rows/s", flush=True)
    tenant = Tenant.objects.create(name="Import bench", slug=f"bench-import-{os.getpid()}", currency="EUR")
    results: list[tuple[str, int, float]] = []
    profiler = cProfile.Profile() if args.profile else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            people, stream = write_files(Path(tmp), args.customers, args.events)
            measure("customers: baseline, csv parsing only", args.customers, lambda: parse_only(people), results)
            measure("customers: baseline, raw COPY into customers_customer", args.customers, lambda: copy_customers(tenant, people), results)
            measure("customers: import job with the writers stubbed out", args.customers,
                    lambda: run_import_without_writers(tenant, "customers", people, CUSTOMER_MAPPING), results)
            if profiler and args.profile == "customers":
                profiler.enable()
            first = measure("customers: import job, first run (creates)", args.customers,
                            lambda: run_import(tenant, "customers", people, CUSTOMER_MAPPING), results)
            if profiler:
                profiler.disable()
            second = measure("customers: import job, same file again (unchanged)", args.customers,
                             lambda: run_import(tenant, "customers", people, CUSTOMER_MAPPING), results)
            assert (first["created"], second["unchanged"]) == (args.customers, args.customers), (first, second)

            measure("events: baseline, csv parsing only", args.events, lambda: parse_only(stream), results)
            measure("events: baseline, raw COPY into customers_event", args.events, lambda: copy_events(tenant, stream), results)
            measure("events: import job with the writers stubbed out", args.events,
                    lambda: run_import_without_writers(tenant, "events", stream, EVENT_MAPPING), results)
            if profiler and args.profile == "events":
                profiler.enable()
            first = measure("events: import job, first run (inserts)", args.events,
                            lambda: run_import(tenant, "events", stream, EVENT_MAPPING), results)
            if profiler:
                profiler.disable()
            second = measure("events: import job, same file again (duplicates)", args.events,
                             lambda: run_import(tenant, "events", stream, EVENT_MAPPING), results)
            assert (first["created"], second["duplicates"]) == (args.events, args.events), (first, second)
    finally:
        cleanup(tenant)

    best = max(rows / seconds for label, rows, seconds in results if "import job" in label and "stubbed" not in label)
    verdict = "meets" if best >= TARGET else "is below"
    print(f"best import rate {best:,.0f} rows/s {verdict} the {TARGET:,} rows/s target", flush=True)
    figures: dict[str, Any] = {f"{label} (rows/s)": round(rows / seconds) for label, rows, seconds in results}
    emit("import", {**figures, "target (rows/s)": TARGET, "best import (rows/s)": round(best)}, as_json=args.json)
    if profiler:
        print(f"\ncProfile of the {args.profile} import (first run), top 30 by own time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
