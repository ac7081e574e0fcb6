"""The base every long Celery job uses: a registry of job kinds and a progress reporter.

An app declares a job in its own `jobs.py`:

    @register_job("audit_export", permission=Perm.EXPORT_DATA, label=_("Audit log export"))
    def export_audit_log(job: JobContext) -> dict:
        job.set_total(n)
        ...
        job.advance(500)
        return {"rows": n}

`tenants.tasks.run_job` loads the JobRun for its tenant and calls the handler through
`services.run_job`, which marks it running, then succeeded or failed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.roles import Perm

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from tenants.models import JobRun, Tenant


@dataclass(frozen=True)
class JobHandler:
    kind: str
    func: Callable[[JobContext], dict[str, Any] | None]
    permission: Perm
    label: str | Promise


_REGISTRY: dict[str, JobHandler] = {}


def register_job(
    kind: str, *, permission: Perm = Perm.RUN_JOBS, label: str | Promise = ""
) -> Callable[[Callable[[JobContext], dict[str, Any] | None]], Callable[[JobContext], dict[str, Any] | None]]:
    def decorator(func: Callable[[JobContext], dict[str, Any] | None]) -> Callable[[JobContext], dict[str, Any] | None]:
        _REGISTRY[kind] = JobHandler(kind=kind, func=func, permission=permission, label=label or kind)
        return func

    return decorator


def get_handler(kind: str) -> JobHandler | None:
    return _REGISTRY.get(kind)


def job_label(kind: str) -> str:
    handler = _REGISTRY.get(kind)
    return str(handler.label) if handler else kind


class JobContext:
    """Progress reporting for one running job. Writes at most every `min_interval` seconds."""

    def __init__(self, *, job: JobRun, tenant: Tenant, min_interval: float = 0.5) -> None:
        self.job = job
        self.tenant = tenant
        self.params = job.params
        self._min_interval = min_interval
        self._last_write = 0.0

    def set_total(self, total: int) -> None:
        self.job.total = max(total, 0)
        self._write(force=True)

    def advance(self, processed: int = 1, *, errors: int = 0) -> None:
        self.job.processed += processed
        self.job.error_count += errors
        self._write()

    def _percent(self) -> int:
        if not self.job.total:
            return 0
        return min(99, int(self.job.processed * 100 / self.job.total))

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self._min_interval:
            return
        self._last_write = now
        self.job.progress = self._percent()
        self.job.heartbeat_at = timezone.now()
        self.job.save(update_fields=["total", "processed", "error_count", "progress", "heartbeat_at"])

    def save_file(self, name: str, content: bytes) -> None:
        self.job.result_file.save(f"{self.tenant.pk}/{self.job.pk}/{name}", ContentFile(content), save=False)
        self.job.save(update_fields=["result_file"])

    def succeed(self, result: dict[str, Any]) -> None:
        self.job.status = self.job.Status.SUCCEEDED
        self.job.progress = 100
        if self.job.total is None:
            self.job.total = self.job.processed
        self.job.result = result
        self.job.finished_at = timezone.now()
        self.job.heartbeat_at = self.job.finished_at
        self.job.save()

    def fail(self, exc: BaseException) -> None:
        self.job.status = self.job.Status.FAILED
        self.job.error = f"{type(exc).__name__}: {exc}"
        self.job.finished_at = timezone.now()
        self.job.save()


# Jobs owned by this app ---------------------------------------------------------------------


@register_job("audit_export", permission=Perm.VIEW_AUDIT_LOG, label=_("Audit log export (CSV)"))
def export_audit_log(job: JobContext) -> dict[str, Any]:
    from tenants import selectors

    entries = selectors.list_audit_log(tenant=job.tenant)
    job.set_total(entries.count())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["time", "actor", "action", "target_type", "target_id", "target", "ip", "metadata"])
    rows = 0
    for batch in selectors.iter_in_batches(entries, batch_size=int(job.params.get("batch_size", 2000))):
        for e in batch:
            writer.writerow(
                [e.created_at.isoformat(), e.actor_label, e.action, e.target_type, e.target_id,
                 e.target_label, e.ip or "", json.dumps(e.metadata, ensure_ascii=False)]
            )
        rows += len(batch)
        job.advance(len(batch))
    job.save_file(f"audit-log-{timezone.now():%Y%m%d-%H%M%S}.csv", buffer.getvalue().encode("utf-8"))
    return {"rows": rows}
