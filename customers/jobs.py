"""Job kinds of the customers app (imports, exports); see tenants/jobs.py for the base."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from b2p_platform.exceptions import DomainError
from customers import imports, selectors
from customers.forms import CustomerFilterForm
from customers.models import Segment
from customers.segments import freshness
from customers.segments import jobs as segment_jobs  # noqa: F401  (registers the segment job kinds)
from tenants.jobs import JobContext, register_job
from tenants.roles import Perm
from tenants.selectors import iter_in_batches
from tenants.services import start_job

EXPORT_COLUMNS = (
    "external_id", "email", "phone", "first_name", "last_name", "kind", "company.external_id", "company.name",
    "company.industry", "company.size", "company_role", "tags", "locale", "timezone", "first_seen_at", "last_seen_at",
    "created_at",
)


@register_job("customers_import", permission=Perm.RUN_JOBS, label=gettext_lazy("Import (CSV)"))
def import_csv(job: JobContext, opener: imports.Opener | None = None) -> dict[str, Any]:
    """params: kind (customers, orders, events, or one another app registered), mapping (see customers/imports.py),
    path of the upload, file_name. `opener` reads another file than the upload (`manage.py import_csv`).
    Segments are not refreshed row by row meanwhile: one full rebuild is queued at the end."""
    with freshness.suspended():
        result = imports.run_import_job(job, opener=opener)
    # Segments are made of customers, their events and orders: a kind of another app (products) leaves them as they are.
    if job.params.get("kind") not in imports.REGISTERED and Segment.objects.for_tenant(job.tenant).exists():
        start_job(tenant=job.tenant, actor=None, kind="segments_rebuild", params={"after_import": job.job.pk})
    return result


def export_filters(params: Any) -> selectors.CustomerFilters:
    """The customer list's filters from job params, checked by the list's own form."""
    raw = params.get("filters") if isinstance(params, dict) else None
    raw = raw if isinstance(raw, dict) else {}
    form = CustomerFilterForm({k: v for k, v in raw.items() if k in CustomerFilterForm.base_fields})
    if not form.is_valid():
        raise DomainError(_("The export filters are invalid: %(errors)s") % {"errors": form.errors.as_text()}, field="filters")
    known = {f.name for f in dataclasses.fields(selectors.CustomerFilters)}
    values = {k: v for k, v in form.cleaned_data.items() if v and k in known}
    for key in ("company_id", "segment_id"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            values[key] = value
    return selectors.CustomerFilters(**values)


@register_job("customers_export", permission=Perm.EXPORT_DATA, label=gettext_lazy("Customer export (CSV)"))
def export_customers(job: JobContext) -> dict[str, Any]:
    """The customers matching the list's filters, one row each; column names are the import's target
    fields, so the file imports back with the columns matched automatically."""
    from customers.services import attribute_definitions

    filters = export_filters(job.params)
    customers = selectors.list_customers(tenant=job.tenant, filters=filters)
    defined = sorted(attribute_definitions(tenant=job.tenant))
    job.set_total(customers.count())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*EXPORT_COLUMNS, *(f"attributes.{k}" for k in defined), "other_attributes"])
    rows = 0
    for batch in iter_in_batches(customers, batch_size=int(job.params.get("batch_size", 2000))):
        for c in batch:
            company = c.company
            attributes = c.attributes or {}
            others = {k: v for k, v in attributes.items() if k not in defined}
            writer.writerow([
                c.external_id, c.email, c.phone, c.first_name, c.last_name, c.kind,
                company.external_id if company else "", company.name if company else "",
                company.industry if company else "", company.size if company else "", c.company_role,
                ", ".join(c.tags or []), c.locale, c.timezone,
                _iso(c.first_seen_at), _iso(c.last_seen_at), _iso(c.created_at),
                *(_cell(attributes.get(k)) for k in defined),
                json.dumps(others, ensure_ascii=False) if others else "",
            ])
        rows += len(batch)
        job.advance(len(batch))
    job.save_file(f"customers-{timezone.now():%Y%m%d-%H%M%S}.csv", buffer.getvalue().encode("utf-8"))
    return {"rows": rows, "filters": {k: v for k, v in dataclasses.asdict(filters).items() if v}}


def _iso(moment: Any) -> str:
    return moment.isoformat() if moment else ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
