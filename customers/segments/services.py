"""Segment writes: create, change and delete definitions, build them, refresh them.

Rules: a definition is validated before it is stored (field errors per path); saving a new or
changed definition queues a rebuild job, and until it finishes the segment is "building" and
incremental refreshes skip it (the rebuild covers everyone). Built-in segments (RFM, clusters,
predictions) belong to their jobs: marketers cannot edit or delete them. A segment others
reference cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from b2p_platform.exceptions import ConflictError, DomainError
from customers.models import Segment
from customers.segments import freshness, membership
from customers.segments.definition import compile_definition, query_settings, validate_definition
from tenants.models import Tenant, User
from tenants.services import Actor, record_audit, start_job

PREVIEW_SAMPLE = 10


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DomainError(_("Give the segment a name."), field="name")
    if len(name.strip()) > 120:
        raise DomainError(_("At most 120 characters."), field="name")
    return name.strip()


@transaction.atomic
def create_segment(*, tenant: Tenant, actor: Actor, name: str, definition: Any, description: str = "") -> Segment:
    name = _clean_name(name)
    checked = validate_definition(tenant=tenant, definition=definition)
    segment = Segment.objects.create(
        tenant=tenant, name=name, description=(description or "")[:300], definition=checked.definition,
        depends_on=sorted(checked.depends_on), created_by=actor if isinstance(actor, User) else None,
    )
    record_audit(tenant=tenant, actor=actor, action="segment.created", target=segment)
    _queue_rebuild(tenant=tenant, actor=actor, segment=segment)
    return segment


@transaction.atomic
def update_segment(
    *, tenant: Tenant, actor: Actor, segment: Segment, name: str | None = None, definition: Any = None,
    description: str | None = None,
) -> Segment:
    segment = Segment.objects.for_tenant(tenant).select_for_update().get(pk=segment.pk)
    if segment.is_builtin:
        raise DomainError(_("Built-in segments are kept by their model and cannot be edited."))
    fields = ["updated_at"]
    if name is not None:
        segment.name = _clean_name(name)
        fields.append("name")
    if description is not None:
        segment.description = description[:300]
        fields.append("description")
    rebuild = False
    if definition is not None:
        checked = validate_definition(tenant=tenant, definition=definition, segment=segment)
        rebuild = checked.definition != segment.definition
        segment.definition, segment.depends_on = checked.definition, sorted(checked.depends_on)
        fields += ["definition", "depends_on"]
    segment.updated_at = timezone.now()
    if rebuild:
        segment.status = Segment.Status.BUILDING
        fields.append("status")
    segment.save(update_fields=fields)
    record_audit(tenant=tenant, actor=actor, action="segment.updated", target=segment, metadata={"rebuild": rebuild})
    if rebuild:
        _queue_rebuild(tenant=tenant, actor=actor, segment=segment)
    return segment


@transaction.atomic
def delete_segment(*, tenant: Tenant, actor: Actor, segment: Segment) -> None:
    if segment.is_builtin:
        raise DomainError(_("Built-in segments are kept by their model and cannot be deleted."))
    users = [s.name for s in Segment.objects.for_tenant(tenant).exclude(pk=segment.pk) if f"segment:{segment.pk}" in s.depends_on]
    if users:
        raise ConflictError(_("Other segments use this one: %(names)s.") % {"names": ", ".join(users)})
    record_audit(tenant=tenant, actor=actor, action="segment.deleted", target=segment)
    segment.delete()


def _queue_rebuild(*, tenant: Tenant, actor: Actor, segment: Segment) -> None:
    start_job(tenant=tenant, actor=actor, kind="segment_rebuild", params={"segment_id": segment.pk})


def request_rebuild(*, tenant: Tenant, actor: Actor, segment: Segment | None = None, actor_membership: Any = None) -> Any:
    """Queue a rebuild of one segment, or of all the tenant's segments."""
    params = {"segment_id": segment.pk} if segment else {}
    kind = "segment_rebuild" if segment else "segments_rebuild"
    return start_job(tenant=tenant, actor=actor, kind=kind, params=params, actor_membership=actor_membership)


def preview_definition(*, tenant: Tenant, definition: Any, segment: Segment | None = None) -> dict[str, Any]:
    """How many customers a definition selects now, and a few of them: the builder's live answer."""
    checked = validate_definition(tenant=tenant, definition=definition, segment=segment)
    matched = compile_definition(tenant=tenant, definition=checked.definition)
    with query_settings():
        sample = list(matched.select_related("company").order_by("-id")[:PREVIEW_SAMPLE])
        count = matched.count()
    return {"count": count, "sample": sample, "definition": checked.definition}


def rebuild_segments(*, tenant: Tenant, segment_ids: list[int] | None = None, progress: Any = None) -> dict[str, Any]:
    """Full rebuild of the given segments (default: all), referenced ones first."""
    segments = list(Segment.objects.for_tenant(tenant))
    ordered = membership.dependency_order(segments)
    if segment_ids is not None:
        wanted = set(segment_ids)
        ordered = [s for s in ordered if s.pk in wanted]
    results: dict[str, Any] = {}
    for segment in ordered:
        try:
            result = membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)
        except Exception as exc:
            Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(status=Segment.Status.FAILED, last_error=str(exc)[:2000])
            raise
        results[str(segment.pk)] = {"size": result.size, "entered": result.entered, "left": result.left, "ms": result.ms}
        if progress is not None:
            progress(1)
    return results


def refresh_changed_customers(
    *, tenant: Tenant, customer_ids: list[int] | None = None, kinds: list[str] | None = None,
) -> dict[str, int]:
    """The freshness task's body: re-evaluate the segments a change can affect, for those customers."""
    if customer_ids is None:
        customer_ids, kind_set = freshness.take_dirty(tenant_id=tenant.pk)
    else:
        kind_set = set(kinds or [])
    if not customer_ids:
        return {"customers": 0, "segments": 0, "changes": 0}
    segments = list(Segment.objects.for_tenant(tenant).filter(status=Segment.Status.READY))
    affected = membership.affected_segments(segments=segments, kinds=kind_set)
    changes = 0
    for start in range(0, len(customer_ids), freshness.BATCH):
        chunk = customer_ids[start:start + freshness.BATCH]
        changed = membership.refresh_for_customers(tenant=tenant, segment_ids=[s.pk for s in affected], customer_ids=chunk)
        changes += sum(e + left for e, left in changed.values())
    return {"customers": len(customer_ids), "segments": len(affected), "changes": changes}


@transaction.atomic
def sync_builtin_segment(
    *, tenant: Tenant, key: str, kind: str, name: str, definition: dict[str, Any], meta: dict[str, Any] | None = None,
) -> Segment:
    """Create or update a built-in segment a model job owns; the job rebuilds it afterwards."""
    checked = validate_definition(tenant=tenant, definition=definition)
    segment, _created = Segment.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, builtin_key=key,
        defaults={"kind": kind, "name": name, "definition": checked.definition, "depends_on": sorted(checked.depends_on),
                  "meta": meta or {}, "updated_at": timezone.now()},
    )
    return segment
