"""Serving offers: GET /api/v1/customers/{id}/offers/?limit=10 under gunicorn (2 workers), against a
minimal authenticated DRF endpoint (GET /api/v1/whoami/) measured in the same run.

Targets (issue #5): p99 under 25 ms, and throughput at least 70% of the minimal endpoint's.
The bench tenant (1,000,000 customers from `python -m bench seed`) gets a catalogue of
products, active offers of every kind (some with segment and prediction rules) and 20 stored
recommendations for each of the sampled customers.

    python -m bench serving            # or: python bench/bench_serving.py [--requests 3000] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # throttles and caches as in production

from bench import common

OFFERS = 60
SAMPLED_CUSTOMERS = 2000


def _prepare(tenant: Any) -> tuple[list[int], str]:
    from customers.models import Customer, Segment
    from offers.models import Offer, Option, OptionGroup, Product, Recommendation
    from tenants import services

    Recommendation.objects.for_tenant(tenant).delete()
    existing = Offer.objects.for_tenant(tenant).filter(name__startswith="bench:")
    if existing.count() < OFFERS:
        products = [Product(tenant=tenant, sku=f"bench-{i}", name=f"Product {i}", category=f"cat-{i % 12}",
                            base_price=Decimal(10 + i), currency="EUR") for i in range(OFFERS)]
        Product.objects.bulk_create(products, ignore_conflicts=True)
        products = list(Product.objects.for_tenant(tenant).filter(sku__startswith="bench-").order_by("id"))
        segment = Segment.objects.for_tenant(tenant).first()
        for i, product in enumerate(products[:OFFERS]):
            kind = ("percent_off", "amount_off", "fixed_price")[i % 3]
            eligibility: dict[str, Any] = {}
            if i % 10 == 0 and segment is not None:
                eligibility = {"not_segments": [segment.pk]}
            elif i % 10 == 1:
                eligibility = {"max_churn_probability": 0.99}
            elif i % 10 == 2:
                eligibility = {"kinds": ["consumer", "business_buyer"]}
            Offer.objects.create(tenant=tenant, name=f"bench: offer {i}", kind=kind, status="active", product=product,
                                 value=Decimal(5), currency="EUR", priority=i % 7, eligibility=eligibility)
        tariff = Offer.objects.create(tenant=tenant, name="bench: tariff", kind="configurable", status="active",
                                      base_price=Decimal(5), currency="EUR")
        group = OptionGroup.objects.create(tenant=tenant, offer=tariff, key="data", label="Data")
        for key, price in (("5gb", 7), ("50gb", 20)):
            Option.objects.create(tenant=tenant, group=group, key=key, label=key, price=Decimal(price))
    offers = list(Offer.objects.for_tenant(tenant).filter(name__startswith="bench:").values_list("pk", flat=True))
    customers = list(Customer.objects.for_tenant(tenant).order_by("?").values_list("pk", flat=True)[:SAMPLED_CUSTOMERS])
    rng = random.Random(3)
    rows = []
    for customer_id in customers:
        for rank, offer_id in enumerate(rng.sample(offers, 20), start=1):
            rows.append(Recommendation(tenant=tenant, customer_id=customer_id, offer_id=offer_id, score=1 / rank, rank=rank,
                                       reason={"code": "bought", "product": "Product"}, model="bench"))
    Recommendation.objects.bulk_create(rows, batch_size=5000)
    _key, raw = services.create_api_key(tenant=tenant, actor=None, name="bench serving", scopes=["offers:read"],
                                        rate_limit="10000000/min")
    return customers, raw


def _load(port: int, raw_key: str, paths: list[str], threads: int) -> tuple[float, list[float], int]:
    """Send every path once over keep-alive connections; (seconds, latencies, non-200 answers)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    queue = list(paths)

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {raw_key}"}
        while True:
            with lock:
                if not queue:
                    break
                path = queue.pop()
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += 0 if ok else 1
        conn.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started, latencies, failures[0]


def _split(paths: list[str], parts: int) -> list[list[str]]:
    size = -(-len(paths) // parts)
    return [paths[i * size:(i + 1) * size] for i in range(parts)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4, help="client threads (keep-alive connections)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of each endpoint")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    url = common.setup_django()
    tenant, _owner = common.bench_tenant()
    customers, raw_key = _prepare(tenant)
    rng = random.Random(11)
    offer_paths = [f"/api/v1/customers/{rng.choice(customers)}/offers/?limit=10" for _ in range(args.requests)]
    minimal_paths = ["/api/v1/whoami/"] * args.requests
    figures: dict[str, Any] = {"customers_sampled": len(customers)}
    # The two endpoints alternate in rounds, so load from anything else on the machine falls on
    # both alike; each ratio compares a round of offers with the minimal rounds either side of it.
    rounds = max(args.rounds, 1)
    timings: dict[str, list[tuple[int, float]]] = {"minimal": [], "offers": []}
    latencies: dict[str, list[float]] = {"minimal": [], "offers": []}
    failures = {"minimal": 0, "offers": 0}
    with common.gunicorn(url, workers=2) as port:
        _load(port, raw_key, minimal_paths[:200] + offer_paths[:200], args.threads)  # warm-up: imports, connections
        batches = {"minimal": _split(minimal_paths, rounds), "offers": _split(offer_paths, rounds)}
        schedule = [("minimal", 0)] + [step for r in range(rounds) for step in (("offers", r), ("minimal", r + 1))]
        for name, r in schedule:
            paths = batches[name][min(r, rounds - 1)]
            seconds, observed, failed = _load(port, raw_key, paths, args.threads)
            timings[name].append((len(paths), seconds))
            latencies[name] += observed
            failures[name] += failed
    for name in ("minimal", "offers"):
        done = sum(n for n, _s in timings[name])
        figures[name] = {"requests_per_s": round(done / sum(s for _n, s in timings[name]), 1), "failures": failures[name],
                         **common.percentiles(latencies[name])}
    rate = {name: [n / s for n, s in timings[name]] for name in timings}
    per_round = sorted(rate["offers"][r] / ((rate["minimal"][r] + rate["minimal"][r + 1]) / 2) for r in range(rounds))
    figures["offers_vs_minimal_per_round"] = [round(x, 3) for x in per_round]
    figures["offers_vs_minimal_throughput"] = round(figures["offers"]["requests_per_s"] / figures["minimal"]["requests_per_s"], 3)
    figures["offers_vs_minimal_median_round"] = round(per_round[len(per_round) // 2], 3)
    figures["offers_p99_ms"] = figures["offers"]["p99_ms"]
    common.emit("serving", figures, as_json=args.json)
    return figures


if __name__ == "__main__":
    main()
