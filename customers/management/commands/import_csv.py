"""manage.py import_csv SLUG KIND FILE [--mapping JSON-or-path] [--sync | --queue]"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from b2p_platform.exceptions import DomainError
from customers import imports
from customers import jobs as customer_jobs
from tenants import services as tenant_services
from tenants.jobs import JobContext
from tenants.models import JobRun, Tenant

HELP = """Import customers, orders, events or products from a CSV file into a tenant, with a per-row error report.

By default (--sync) the import runs here and now through the same job code as the dashboard's
import: it is recorded as a job (visible on the tenant's Jobs page), progress is printed, then
the counts and where the error report is. --queue copies the file into the storage and enqueues
the job for a Celery worker instead, printing its id.

--mapping is a JSON object, or the path of a JSON file: target field -> source column (header
name, or 0-based index when "header": false), or {"value": "..."} for a fixed value; plus options
delimiter (",", ";", "\\t", "|", "whitespace", "auto"), header (true/false), encoding (utf-8,
cp1251, latin-1, ...), date_format (strptime, e.g. "%Y%m%d"), date_timezone, default_currency,
cancelled_if_prefix, group_by (true or a column: rows of one order id become one order with
lines), integer_ids (read "123.0" ids as "123"), clear_blank (customers: empty cells clear).
Without target fields, columns are matched by their header names.

Target fields: customers: external_id email phone first_name last_name kind company.name
company.external_id company.industry company.size company_role tags locale timezone
attributes.<key>; orders: external_id customer_external_id email ordered_at status currency total
line.sku line.name line.quantity line.unit_price; events: event_id type customer_external_id
email occurred_at properties.<key>; products: sku name category base_price currency in_stock
is_active attributes.<key> (without a mapping, columns that match no target become attributes).

Exit status: 0 when the import ran (rejected rows are counted and reported), 1 on an unknown
tenant, an unreadable file, a bad mapping, a wrong encoding, missing columns or a stop part-way."""


class _ConsoleJobContext(JobContext):
    """The job's progress reporter, also printing progress to the terminal about twice a second."""

    def __init__(self, *, out: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._out = out
        self._printed = 0.0

    def set_total(self, total: int) -> None:
        super().set_total(total)
        self._out.write(f"{total} rows to import")

    def advance(self, processed: int = 1, *, errors: int = 0) -> None:
        super().advance(processed, errors=errors)
        now = time.monotonic()
        if now - self._printed >= 0.5:
            self._printed = now
            total = self.job.total or 0
            percent = f" ({self.job.processed * 100 // total}%)" if total else ""
            self._out.write(f"  {self.job.processed}/{total} rows{percent}, {self.job.error_count} rejected")


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from argparse import RawDescriptionHelpFormatter

        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("kind", choices=imports.KINDS)
        parser.add_argument("file", help="the CSV file")
        parser.add_argument("--mapping", help="JSON object or path to a JSON file (see above)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--sync", action="store_true", help="run in this process now (the default)")
        mode.add_argument("--queue", action="store_true", help="enqueue for a Celery worker and print the job id")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"], is_active=True).first()
        if tenant is None:
            raise CommandError(f"No active tenant {options['slug']!r}")
        path = Path(options["file"])
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        opener = lambda: path.open("rb")  # noqa: E731
        try:
            mapping = self._mapping(options["kind"], options.get("mapping"), opener)
            imports.check_import(mapping=mapping, opener=opener)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write("Mapping: " + json.dumps(mapping.as_json(), ensure_ascii=False))
        params = {"kind": mapping.kind, "mapping": mapping.as_json(), "file_name": path.name}
        if options["queue"]:
            self._enqueue(tenant, path, params)
        else:
            self._run(tenant, params, opener)

    def _mapping(self, kind: str, raw: str | None, opener: Any) -> imports.ImportMapping:
        data: Any = {}
        if raw:
            text = raw
            if not raw.lstrip().startswith("{"):
                try:
                    text = Path(raw).read_text(encoding="utf-8")
                except OSError as exc:
                    raise CommandError(f"Cannot read the mapping file {raw}: {exc.strerror or exc}") from exc
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise CommandError(f"The mapping is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CommandError("The mapping must be a JSON object of target field: column.")
        if not set(data) - imports.OPTION_KEYS:
            # Only options (or nothing): match the columns by their header names.
            options = imports.parse_options(kind, data)
            preview = imports.preview_file(opener, encoding=options.encoding, delimiter=options.delimiter,
                                           header=data.get("header") if isinstance(data.get("header"), bool) else None)
            if not preview.header:
                raise CommandError("The file has no header row: give --mapping with column numbers.")
            suggested = {**imports.suggest_mapping(kind, preview.columns), **imports.suggest_extras(kind, preview.columns)}
            unmatched = [c for i, c in enumerate(preview.columns) if i not in suggested.values()]
            registered = imports.REGISTERED.get(kind)
            if unmatched and registered is not None and registered.keep_unmapped:
                kept = []
                for index, column in enumerate(preview.columns):
                    target = imports.extra_target(kind, column)
                    if index not in suggested.values() and target and target not in suggested:
                        suggested[target] = index
                        kept.append(target)
                self.stdout.write(f"Columns kept as: {', '.join(kept)}")
            elif unmatched:
                self.stdout.write(f"Columns not imported: {', '.join(unmatched)} (name them in --mapping, "
                                  "e.g. as attributes.<key> or properties.<key>)")
            data = {**data, "delimiter": preview.delimiter, "header": True,
                    **{target: preview.columns[index] for target, index in suggested.items()}}
        return imports.parse_mapping(kind, data)

    def _run(self, tenant: Tenant, params: dict[str, Any], opener: Any) -> None:
        moment = timezone.now()
        job = JobRun.objects.create(tenant=tenant, kind="customers_import", params=params, status=JobRun.Status.RUNNING,
                                    started_at=moment, heartbeat_at=moment)
        tenant_services.record_audit(tenant=tenant, actor=None, action="job.started", target=job,
                                     metadata={"kind": job.kind, "via": "manage.py import_csv"})
        context = _ConsoleJobContext(job=job, tenant=tenant, out=self.stdout)
        try:
            # The job's own function: segments wait for one rebuild at the end, as from the dashboard.
            result = customer_jobs.import_csv(context, opener=opener)
        except DomainError as exc:
            context.fail(exc)
            self._print_result(job.result or {}, job)
            raise CommandError(f"Job #{job.pk} failed: {exc.message}") from exc
        except BaseException as exc:
            context.fail(exc)
            raise
        context.succeed(result)
        self._print_result(result, job)

    def _print_result(self, result: dict[str, Any], job: JobRun) -> None:
        if not result:
            return
        names = ("rows", "created", "updated", "unchanged", "duplicates", "rejected", "new_customers", "orders_rejected", "lines")
        self.stdout.write(f"Job #{job.pk}: " + ", ".join(f"{n} {result[n]}" for n in names if n in result)
                          + f" in {result.get('seconds')} s ({result.get('rows_per_second')} rows/s)")
        for error in result.get("errors", [])[:10]:
            self.stdout.write(f"  line {error['line']}: {error['error']}")
        if result.get("rejected"):
            self.stdout.write(self.style.WARNING(f"{result['rejected']} rows rejected; error report: {_file_location(job)}"))

    def _enqueue(self, tenant: Tenant, path: Path, params: dict[str, Any]) -> None:
        with path.open("rb") as f:
            stored = imports.store_upload(tenant=tenant, name=path.name, content=f)
        with transaction.atomic():
            job = tenant_services.start_job(tenant=tenant, actor=None, kind="customers_import", params={**params, "path": stored})
        self.stdout.write(f"Job #{job.pk} queued for a worker (tenant {tenant.slug}); follow it on the Jobs page.")


def _file_location(job: JobRun) -> str:
    if not job.result_file:
        return "(none)"
    try:
        return job.result_file.path
    except NotImplementedError:  # a remote storage: download it from the job page
        return job.result_file.name
