"""Steps the CSV import tests share: build a file, run the import job, read its error report."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from customers import imports
from tenants import services as tenant_services
from tenants import tasks
from tenants.models import JobRun, Membership, Tenant


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> None:
    """Uploads and reports go to a throw-away folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


def csv_bytes(rows: list[list[Any]], *, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def run_import(tenant: Tenant, member: Membership, kind: str, content: bytes, mapping: Any, **params: Any) -> JobRun:
    """The import job, started as the wizard starts it and run in this process."""
    path = imports.store_upload(tenant=tenant, name="data.csv", content=io.BytesIO(content))
    job = tenant_services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="customers_import",
                                    params={"kind": kind, "mapping": mapping, "path": path, "file_name": "data.csv", **params})
    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)
    job.refresh_from_db()
    return job


def error_report(job: JobRun) -> list[dict[str, str]]:
    with job.result_file.open("rb") as f:
        return list(csv.DictReader(io.StringIO(f.read().decode())))
