"""Segment freshness: a changed customer's memberships are re-evaluated within seconds.

Write services call `customers_changed(tenant_id, customer_ids, kinds)` after their transaction
commits. With Redis (production, tests) the ids and the kinds of change ("profile", "order",
"event:add_to_cart", ...) collect in two per-tenant Redis sets and at most one refresh task per
tenant is queued: under a stream of events each task drains everything that arrived meanwhile,
so the work per event falls as the load rises instead of queueing one task per request.
Embedded mode (no Redis) passes the ids in the task message instead.

Races: the task clears the "queued" flag *before* it takes the ids, so an id added after the
flag was cleared queues a new task, and one added before is taken by this one; nothing is lost.
The scheduled full rebuild reconciles anything a crash dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import transaction

BATCH = 5000
FLAG_TTL = 60  # seconds; a lost task (worker killed) stops blocking new ones after this


@functools.cache
def _client() -> Any:
    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _keys(tenant_id: int) -> tuple[str, str, str]:
    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', 'b2p')}:segdirty:{tenant_id}"
    return f"{prefix}:ids", f"{prefix}:kinds", f"{prefix}:queued"


_suspended: ContextVar[bool] = ContextVar("segment_freshness_suspended", default=False)


@contextmanager
def suspended() -> Iterator[None]:
    """Bulk writers (CSV imports) note nothing per row and queue one full rebuild at the end."""
    token = _suspended.set(True)
    try:
        yield
    finally:
        _suspended.reset(token)


def is_suspended() -> bool:
    """Whether changes are not being noted here (a bulk writer may skip gathering them)."""
    return _suspended.get()


def customers_changed(*, tenant_id: int, customer_ids: Iterable[int], kinds: Iterable[str]) -> None:
    """Note that these customers changed; their segments refresh once the transaction commits."""
    if _suspended.get():
        return
    ids = sorted({int(c) for c in customer_ids})
    kind_set = sorted(set(kinds))
    if not ids or not kind_set:
        return
    transaction.on_commit(functools.partial(_dispatch, tenant_id=tenant_id, customer_ids=ids, kinds=kind_set))


def _dispatch(*, tenant_id: int, customer_ids: list[int], kinds: list[str]) -> None:
    from customers import tasks

    client = _client()
    if client is None:
        for start in range(0, len(customer_ids), BATCH):
            tasks.refresh_customer_segments.delay(tenant_id=tenant_id, customer_ids=customer_ids[start:start + BATCH], kinds=kinds)
        return
    ids_key, kinds_key, flag_key = _keys(tenant_id)
    pipe = client.pipeline()
    for start in range(0, len(customer_ids), BATCH):
        pipe.sadd(ids_key, *customer_ids[start:start + BATCH])
    pipe.sadd(kinds_key, *kinds)
    pipe.set(flag_key, 1, nx=True, ex=FLAG_TTL)
    *_, queued_now = pipe.execute()
    if queued_now:
        tasks.refresh_customer_segments.delay(tenant_id=tenant_id)


def take_dirty(*, tenant_id: int) -> tuple[list[int], set[str]]:
    """Everything noted for this tenant since the last take (Redis mode)."""
    client = _client()
    ids_key, kinds_key, flag_key = _keys(tenant_id)
    client.delete(flag_key)
    pipe = client.pipeline()
    pipe.smembers(kinds_key)
    pipe.delete(kinds_key)
    pipe.smembers(ids_key)
    pipe.delete(ids_key)
    kinds, _, ids, _ = pipe.execute()
    return sorted(int(i) for i in ids), {k.decode() for k in kinds}
