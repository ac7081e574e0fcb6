"""Helpers shared by the benchmarks: the bench database, Django set-up, the bench tenant,
percentiles, a gunicorn server, and printing figures (optionally as JSON).

Benchmarks use their own database, `b2p_bench` on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/b2p_bench; BENCH_DATABASE_URL overrides): `make bench` exports
DATABASE_URL for the development database, which a million-customer tenant must not land in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/b2p_bench"
BENCH_DATABASE_NAME = "b2p_bench"
BENCH_TENANT = "bench"
BENCH_OWNER = "owner@bench.example"
RESULT_FILE_ENV = "BENCH_RESULT_FILE"  # set by `python -m bench --json`: each benchmark appends its figures


def bench_database_url() -> str:
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        return DEFAULT_DATABASE_URL
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{BENCH_DATABASE_NAME}"))


def setup_django(database_url: str | None = None, *, migrate: bool = True) -> str:
    """Point Django at the bench database (created if missing), set it up and migrate it."""
    url = database_url or bench_database_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "b2p_platform.settings.test")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    _create_database(url)
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)
    return url


def _create_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    parts = urllib.parse.urlsplit(url)
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}", flush=True)
    finally:
        conn.close()


def bench_tenant() -> tuple[Any, Any]:
    """The bench tenant and its owner (created on first use)."""
    from tenants import services
    from tenants.models import Tenant, User

    tenant = Tenant.objects.filter(slug=BENCH_TENANT).first()
    if tenant is None:
        tenant, _owner = services.create_tenant(name="Bench Telecom & Parts", slug=BENCH_TENANT, owner_email=BENCH_OWNER)
    return tenant, User.objects.get(email=BENCH_OWNER)


def percentiles(samples_seconds: Sequence[float]) -> dict[str, float]:
    """Latency figures in milliseconds."""
    ms = np.asarray(samples_seconds, dtype=float) * 1000
    if not len(ms):
        return {"n": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1),
            "mean_ms": round(float(ms.mean()), 1), "max_ms": round(float(ms.max()), 1)}


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """with timed() as t: ...; t["seconds"]"""
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - started


def emit(name: str, figures: dict[str, Any], *, as_json: bool = False) -> None:
    """Print a benchmark's figures; also append them to $BENCH_RESULT_FILE when set."""
    if as_json:
        print(json.dumps({"benchmark": name, **figures}, default=str))
    else:
        print(f"\n== {name}")
        for key, value in figures.items():
            print(f"  {key:42s} {_format(value)}")
    path = os.environ.get(RESULT_FILE_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"benchmark": name, **figures}, default=str) + "\n")
    sys.stdout.flush()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, *, workers: int = 2) -> Iterator[int]:
    """A gunicorn serving the project from the bench database; yields its port."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
           "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "b2p_platform.settings.test")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "b2p_platform.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
