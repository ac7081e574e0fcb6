from django import template

from tenants.jobs import job_label as _job_label

register = template.Library()


@register.filter
def job_label(kind: str) -> str:
    return _job_label(kind)
