from django import template
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tenants.jobs import job_label as _job_label

register = template.Library()


@register.filter
def job_label(kind: str) -> str:
    return _job_label(kind)


_RESULT_LABELS = {
    "rows": _("Rows"),
    "created": pgettext_lazy("count of rows", "Created"),
    "updated": pgettext_lazy("count of rows", "Updated"),
    "unchanged": pgettext_lazy("count of rows", "Unchanged"),
    "rejected": pgettext_lazy("count of rows", "Rejected"),
    "duplicates": _("Duplicates"),
    "accepted": pgettext_lazy("count of rows", "Accepted"),
    "kind": _("Kind"),
    "seconds": _("Seconds"),
    "rows_per_second": _("Rows per second"),
    "new_customers": _("New customers"),
    "orders_rejected": _("Orders rejected"),
    "lines": _("Order lines"),
    "stopped_at_line": _("Stopped at line"),
}


@register.filter
def job_result_label(key: str) -> str:
    """A translated label for a job's result count; unknown keys are shown as they are."""
    return str(_RESULT_LABELS.get(key, key.replace("_", " ")))
