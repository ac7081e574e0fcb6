"""Job kinds of the offers app (see tenants/jobs.py for the base)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from b2p_platform.exceptions import DomainError
from tenants.jobs import JobContext, register_job
from tenants.roles import Perm


@register_job("recommendations_train", permission=Perm.RUN_JOBS, label=gettext_lazy("Recommendation training"))
def train_recommendations(job: JobContext) -> dict[str, Any]:
    """params: top_n (offers kept per customer, default 20)."""
    # Imported when the job runs, not when job modules are autodiscovered (numpy, scipy, implicit).
    from offers import recommendations

    top_n = job.params.get("top_n", 20) if isinstance(job.params, dict) else 20
    if not isinstance(top_n, int) or isinstance(top_n, bool) or not 1 <= top_n <= recommendations.MAX_TOP_N:
        raise DomainError(_("top_n must be a whole number from 1 to %(max)d.") % {"max": recommendations.MAX_TOP_N}, field="top_n")
    job.set_total(recommendations.count_customers(tenant=job.tenant))
    return recommendations.train_recommendations(tenant=job.tenant, progress=job.advance, top_n=top_n)
