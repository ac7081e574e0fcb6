"""Dashboard page latency at a million customers and ten million events: the customer list (plain,
searched, filtered) and customer profiles (random and the heaviest buyer), against a trivial
authenticated page (workspace settings) measured in the same run. Target: p95 < 200 ms.

    python -m bench pages                              # reuses the bench tenant if it is big enough
    python bench/bench_pages.py --customers 100000 --requests 50 --no-gunicorn

Pages are requested one at a time by a signed-in owner: in-process through Django's test client,
then over HTTP from gunicorn with 2 workers.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

TARGET_P95_MS = 200.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000, help="seed the bench tenant to this size when smaller")
    parser.add_argument("--events-per-customer", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=200, help="requests per page and server")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-gunicorn", action="store_true", help="only the in-process test client")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    url = common.setup_django(args.database_url)
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    tenant, owner = common.bench_tenant()
    size = _ensure_seeded(tenant, args)
    try:
        reverse("customers:list", args=[tenant.slug])
        reverse("customers:detail", args=[tenant.slug, 1])
    except NoReverseMatch:
        message = "skipped: the customer pages (customers:list, customers:detail) do not exist yet"
        print(message)
        figures = {"skipped": message}
        common.emit("pages", figures, as_json=args.json)
        return figures

    pages = _pages(tenant, args.seed)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    figures: dict[str, Any] = {"customers": size["customers"], "events": size["events"], "requests_per_page": args.requests}
    in_process = _measure(pages, lambda path: _client_get(client, path), args)
    figures.update({f"client.{name}": result for name, result in in_process.items()})
    if not args.no_gunicorn:
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        with common.gunicorn(url, workers=2) as port:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            served = _measure(pages, lambda path: _http_get(connection, path, cookie), args)
            connection.close()
        figures.update({f"gunicorn.{name}": result for name, result in served.items()})
    verdicts = {name: ("ok" if result.get("p95_ms", 0) < TARGET_P95_MS else "OVER TARGET")
                for name, result in figures.items() if isinstance(result, dict) and "p95_ms" in result
                and not name.endswith(".baseline_settings")}
    figures["target"] = f"p95 < {TARGET_P95_MS:.0f} ms"
    figures["verdict"] = "ok" if all(v == "ok" for v in verdicts.values()) else {k: v for k, v in verdicts.items() if v != "ok"}
    common.emit("pages", figures, as_json=args.json)
    return figures


def _ensure_seeded(tenant: Any, args: argparse.Namespace) -> dict[str, int]:
    """Reuse the bench tenant when it already has the customers asked for; otherwise seed it."""
    from django.db import connection

    from customers import seed
    from customers.models import Customer

    have = Customer.objects.for_tenant(tenant).count()
    if have < args.customers:
        print(f"bench tenant has {have:,} customers, seeding {args.customers:,} (takes minutes at a million)", flush=True)
        seed.delete_customer_data(tenant=tenant)
        seed.seed_customers(tenant=tenant, customers=args.customers, seed=args.seed,
                            events_per_customer=args.events_per_customer, workers=2, stdout=sys.stdout)
        with connection.cursor() as cursor:
            for table in ("customers_customer", "customers_order", "customers_event", "customers_consent"):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
    with connection.cursor() as cursor:
        # The planner's estimate: exact counts of ten million rows are what the pages avoid too.
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'customers_event'")
        events = int(cursor.fetchone()[0])
    return {"customers": max(have, Customer.objects.for_tenant(tenant).count()), "events": events}


def _pages(tenant: Any, seed: int) -> dict[str, list[str]]:
    """Paths per page kind: several customers or queries each, so caches don't flatter."""
    from django.db import connection
    from django.urls import reverse

    from customers.models import Customer

    rng = random.Random(seed)
    customers = Customer.objects.for_tenant(tenant)
    bounds = customers.order_by("id").values_list("id", flat=True)
    low, high = bounds.first(), bounds.last()
    random_ids: list[int] = []
    while len(random_ids) < 50:
        candidate = customers.filter(id__gte=rng.randint(low, high)).order_by("id").values_list("id", flat=True).first()
        if candidate is not None:
            random_ids.append(candidate)
    with connection.cursor() as cursor:
        # The heaviest buyers: the most orders (and with them the most events).
        cursor.execute(
            "SELECT customer_id FROM customers_order WHERE tenant_id = %s GROUP BY customer_id ORDER BY count(*) DESC LIMIT 5",
            [tenant.pk],
        )
        heavy_ids = [row[0] for row in cursor.fetchall()]
    some = list(customers.filter(id__in=random_ids[:10]).values_list("last_name", "email", "phone"))
    searches = [name.lower() for name, _e, _p in some] + [email.split("@")[0] for _n, email, _p in some]
    searches += [phone[-7:] for _n, _e, phone in some if phone]
    list_url = reverse("customers:list", args=[tenant.slug])
    # A deep page: the keyset cursor of a customer half-way down the list.
    return {
        "baseline_settings": [reverse("tenants:settings", args=[tenant.slug])],
        "list": [list_url],
        "list_deep": [f"{list_url}?before={rng.randint(low, high)}" for _ in range(20)],
        "list_search": [f"{list_url}?{urlencode({'q': q})}" for q in searches],
        "list_filtered": [f"{list_url}?kind=business_buyer&tag=vip", f"{list_url}?tag=wholesale",
                          f"{list_url}?attribute=plan%3Dprepaid"],
        "detail": [reverse("customers:detail", args=[tenant.slug, pk]) for pk in random_ids],
        "detail_heavy": [reverse("customers:detail", args=[tenant.slug, pk]) for pk in heavy_ids],
    }


def _measure(pages: dict[str, list[str]], get: Callable[[str], int], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, paths in pages.items():
        for i in range(args.warmup):
            get(paths[i % len(paths)])
        samples, errors = [], 0
        for i in range(args.requests):
            path = paths[i % len(paths)]
            started = time.perf_counter()
            status = get(path)
            samples.append(time.perf_counter() - started)
            errors += status != 200
        results[name] = {**common.percentiles(samples), "errors": errors}
        print(f"  {name:18s} {results[name]}", flush=True)
    baseline = results["baseline_settings"].get("p95_ms") or 1.0
    for result in results.values():
        result["p95_vs_baseline"] = round(result["p95_ms"] / baseline, 1)
    return results


def _client_get(client: Any, path: str) -> int:
    return int(client.get(path).status_code)


def _http_get(connection: http.client.HTTPConnection, path: str, cookie: str) -> int:
    connection.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
    response = connection.getresponse()
    response.read()
    return int(response.status)


if __name__ == "__main__":
    main()
