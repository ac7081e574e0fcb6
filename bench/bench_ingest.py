"""Event ingestion through the API under gunicorn (2 workers), against a raw COPY of the same rows.

Targets (issue #3): at least 20,000 events/s in batches of 500, and at least a third of the rate
of a raw COPY of the same rows into the same table, measured in this same run.

    python -m bench ingest            # or: python bench/bench_ingest.py [--batches 200] [--json]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "b2p_platform.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    sys.path.insert(0, str(ROOT))
    import psycopg2

    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    name = database_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(customers: int) -> tuple[Any, str]:
    from customers import services as customer_services
    from tenants import services
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug="bench-ingest").first()
    if tenant is None:
        tenant, _owner = services.create_tenant(name="Bench ingest", slug="bench-ingest", owner_email="bench@ingest.example")
    for start in range(0, customers, 5000):
        customer_services.ensure_customers(tenant=tenant, external_ids={f"u{i}" for i in range(start, min(start + 5000, customers))})
    _key, raw = services.create_api_key(tenant=tenant, actor=None, name="bench", scopes=["events:write"])
    return tenant, raw


def _bodies(run_id: str, batches: int, customers: int, backfill: bool = False) -> list[bytes]:
    """Live traffic: events that happened in the last minutes (as a site's tracker sends them);
    with backfill, dates spread over ten months (as a history upload sends them)."""
    from datetime import UTC, datetime, timedelta

    rng = random.Random(7)
    now = datetime.now(UTC)

    def moment() -> str:
        if backfill:
            return f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
        return (now - timedelta(seconds=rng.randint(0, 600))).isoformat()

    types = ["page_view", "product_view", "add_to_cart", "offer_view", "offer_click"]
    bodies = []
    for b in range(batches):
        events = [
            {"event_id": f"{run_id}-{b}-{i}", "type": rng.choice(types), "customer_external_id": f"u{rng.randrange(customers)}",
             "occurred_at": moment(),
             "properties": {"path": f"/p/{rng.randrange(300)}", "ref": rng.choice(["email", "ads", "direct"])}}
            for i in range(BATCH)
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def _load(port: int, raw_key: str, bodies: list[bytes], threads: int) -> tuple[float, list[float], int]:
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    accepted = [0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}

    def run() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/api/v1/events/", body=body, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload}")
            with lock:
                latencies.append(elapsed)
                accepted[0] += payload["accepted"]

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started, latencies, accepted[0]


def _copy_baseline(tenant: Any, run_id: str, rows: int, customers: int) -> float:
    """The same kind of rows, COPY'd straight into customers_event (same table, same indexes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM customers_customer WHERE tenant_id = %s LIMIT %s", [tenant.pk, customers])
        customer_ids = [r[0] for r in cursor.fetchall()]
    rng = random.Random(11)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for i in range(rows):
        writer.writerow([tenant.pk, rng.choice(customer_ids), "page_view", f"{run_id}-copy-{i}",
                         json.dumps({"path": f"/p/{rng.randrange(300)}", "ref": "email"}), "api",
                         "2026-05-01T10:00:00+00:00", "2026-11-01T10:00:00+00:00"])
    buffer.seek(0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            "COPY customers_event (tenant_id, customer_id, type, event_id, properties, source, occurred_at, received_at) "
            "FROM STDIN WITH (FORMAT csv)",
            buffer,
        )
    connection.commit() if not connection.get_autocommit() else None
    return rows / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200, help="batches of 500 events (default 200 = 100,000 events)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--server-threads", type=int, default=2, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--backfill", action="store_true", help="events dated over ten months instead of live traffic")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/b2p_bench_ingest"))
    args = parser.parse_args(argv)

    _setup_django(args.database_url)
    tenant, raw_key = _prepare(args.customers)
    run_id = f"r{int(time.time())}"
    bodies = _bodies(run_id, args.batches, args.customers, args.backfill)
    port = _free_port()
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", "API_KEY_DEFAULT_RATE": "100000000/min", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "b2p_platform.wsgi", "--workers", "2", "--worker-class", "gthread", "--threads", str(args.server_threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        _load(port, raw_key, bodies[:10], args.threads)  # warm both workers' connections and imports
        elapsed, latencies, accepted = _load(port, raw_key, bodies[10:], args.threads)
    finally:
        server.terminate()
        server.wait(timeout=30)
    sent = (len(bodies) - 10) * BATCH
    api_rate = sent / elapsed
    copy_rate = _copy_baseline(tenant, run_id, sent, args.customers)
    figures = {
        "events_sent": sent,
        "events_accepted": accepted,
        "api_events_per_s": round(api_rate),
        "copy_rows_per_s": round(copy_rate),
        "api_over_copy": round(api_rate / copy_rate, 3),
        "request_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "request_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "targets": {"api_events_per_s": 20_000, "api_over_copy": 0.333},
    }
    from bench.common import RESULT_FILE_ENV

    if os.environ.get(RESULT_FILE_ENV):
        with open(os.environ[RESULT_FILE_ENV], "a") as out:
            out.write(json.dumps({"benchmark": "ingest", **figures}) + "\n")
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"event ingestion, batches of {BATCH}, gunicorn 2 workers, {args.threads} client threads")
        print(f"  API : {figures['api_events_per_s']:>8,} events/s  ({accepted:,} of {sent:,} accepted)")
        print(f"  COPY: {figures['copy_rows_per_s']:>8,} rows/s   (baseline, same table, same run)")
        print(f"  API/COPY = {figures['api_over_copy']:.2f} (target ≥ 0.33); target ≥ 20,000 events/s")
        print(f"  request latency p50 {figures['request_p50_ms']} ms, p99 {figures['request_p99_ms']} ms")
    return figures


if __name__ == "__main__":
    main()
