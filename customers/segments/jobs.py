"""Segment job kinds: building one segment and rebuilding all of a tenant's (see tenants/jobs.py)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy

from customers.models import Segment
from customers.segments import services
from tenants.jobs import JobContext, register_job
from tenants.roles import Perm


@register_job("segment_rebuild", permission=Perm.EDIT_DATA, label=gettext_lazy("Segment build"))
def rebuild_one(job: JobContext) -> dict[str, Any]:
    segment_id = job.params.get("segment_id")
    if not Segment.objects.for_tenant(job.tenant).filter(pk=segment_id).exists():
        return {"skipped": "segment no longer exists"}
    job.set_total(1)
    return services.rebuild_segments(tenant=job.tenant, segment_ids=[int(segment_id)], progress=job.advance)


@register_job("segments_rebuild", permission=Perm.RUN_JOBS, label=gettext_lazy("Rebuild of all segments"))
def rebuild_all(job: JobContext) -> dict[str, Any]:
    job.set_total(Segment.objects.for_tenant(job.tenant).count())
    return services.rebuild_segments(tenant=job.tenant, progress=job.advance)


@register_job("predictions_rfm_clusters", permission=Perm.RUN_JOBS, label=gettext_lazy("RFM scores and clusters"))
def rfm_and_clusters(job: JobContext) -> dict[str, Any]:
    from customers.segments import predictions

    job.set_total(4)
    return predictions.run_rfm_and_clusters(tenant=job.tenant, job=job.job, progress=job.advance)


@register_job("predictions_churn", permission=Perm.RUN_JOBS, label=gettext_lazy("Churn risk model"))
def churn(job: JobContext) -> dict[str, Any]:
    from customers.segments import predictions

    job.set_total(3)
    return predictions.run_churn(tenant=job.tenant, job=job.job, progress=job.advance)


@register_job("predictions_clv", permission=Perm.RUN_JOBS, label=gettext_lazy("Predicted lifetime value"))
def clv(job: JobContext) -> dict[str, Any]:
    from customers.segments import predictions

    job.set_total(3)
    return predictions.run_clv(tenant=job.tenant, job=job.job, progress=job.advance)


@register_job("predictions_refresh", permission=Perm.RUN_JOBS, label=gettext_lazy("All predictions"))
def refresh_all(job: JobContext) -> dict[str, Any]:
    from customers.segments import predictions

    job.set_total(10)
    return {
        "rfm_clusters": predictions.run_rfm_and_clusters(tenant=job.tenant, job=job.job, progress=job.advance),
        "churn": predictions.run_churn(tenant=job.tenant, job=job.job, progress=job.advance),
        "clv": predictions.run_clv(tenant=job.tenant, job=job.job, progress=job.advance),
    }
