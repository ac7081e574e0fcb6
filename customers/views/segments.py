"""Segments in the dashboard: list with sizes and trends, the builder with a live count, a segment's
page (members, history, overlap, export) and the prediction models page."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from b2p_platform.exceptions import DomainError
from customers.models import AttributeDefinition, Company, Consent, Customer, Event, PredictionRun, Segment
from customers.segments import definition as defs
from customers.segments import selectors, services
from customers.segments.definition import DefinitionError
from tenants import services as tenant_services
from tenants.roles import Perm
from tenants.views.base import TenantViewMixin, keyset_page

PAGE_SIZE = 50
EMPTY_DEFINITION: dict[str, Any] = {"match": "all", "conditions": [{"type": "profile", "field": "kind", "op": "eq", "value": "consumer"}]}


class SegmentForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=300, required=False)
    definition = forms.CharField(label=gettext_lazy("Definition (JSON)"), widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))

    def clean_definition(self) -> Any:
        try:
            return json.loads(self.cleaned_data["definition"])
        except ValueError as exc:
            raise forms.ValidationError(_("This is not valid JSON.")) from exc


def _sparkline(values: list[int], width: int = 120, height: int = 24) -> str:
    """SVG polyline points for a size trend (no chart library needed for a thumbnail)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v - low) / span * (height - 2) - 1:.1f}" for i, v in enumerate(values))


class SegmentListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        segments = list(selectors.list_segments(tenant=self.tenant))
        trends = selectors.size_trends(tenant=self.tenant, segments=segments)
        rows = [{"segment": s, "trend": _sparkline(trends[s.pk]), "first": trends[s.pk][0] if trends[s.pk] else None} for s in segments]
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(row["segment"].get_kind_display(), []).append(row)
        return render(request, "customers/segment_list.html", {
            "tenant": self.tenant, "membership": self.membership, "groups": groups, "has_segments": bool(segments),
        })


def builder_metadata(tenant: Any) -> dict[str, Any]:
    """What the builder offers: condition types, fields, operators and choices, translated."""
    ops = {
        "eq": _("is"), "neq": _("is not"), "contains": _("contains"), "not_contains": _("does not contain"),
        "starts_with": _("starts with"), "in": _("is one of"), "is_set": _("is set"), "is_not_set": _("is not set"),
        "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "within_days": _("within the last N days"),
        "not_within_days": _("more than N days ago"), "before": _("before"), "after": _("after"),
        "did": _("did"), "did_not": _("did not"), "at_least": _("at least N times"), "fewer_than": _("fewer than N times"),
        "in_segment": _("is in"), "not_in": _("is not in"),
    }
    profile_labels = {
        "kind": _("Kind"), "external_id": _("External id"), "email": _("Email"), "phone": _("Phone"), "first_name": _("First name"),
        "last_name": _("Last name"), "locale": _("Language"), "timezone": _("Time zone"), "company_role": _("Role at the company"),
        "tags": _("Tags"), "created_at": _("Created"), "first_seen_at": _("First seen"), "last_seen_at": _("Last seen"),
    }
    score_labels = {
        "rfm_group": _("RFM group"), "cluster": _("Cluster"), "r_score": _("Recency score (1–5)"), "f_score": _("Frequency score (1–5)"),
        "m_score": _("Monetary score (1–5)"), "recency_days": _("Days since last purchase"), "frequency": _("Purchases"),
        "monetary": _("Revenue"), "churn_probability": _("Churn probability (0–1)"), "expected_purchases": _("Expected purchases"),
        "expected_value": _("Predicted value"), "prob_alive": _("Probability still active"),
    }
    from customers.analytics.rfm import RFM_GROUPS

    return {
        "types": {"profile": _("Profile"), "attribute": _("Custom attribute"), "company": _("Company"), "consent": _("Consent"),
                  "event": _("Behaviour (events)"), "order": _("Purchases (orders)"), "score": _("Predictions"),
                  "segment": _("Other segment")},
        "ops": ops,
        "profile": {name: {"label": profile_labels[name], "ops": list(o)} for name, o in defs.PROFILE_FIELDS.items()},
        "company": {name: {"label": label, "ops": list(defs.COMPANY_FIELDS[name])} for name, label in (
            ("name", _("Name")), ("industry", _("Industry")), ("size", _("Size")), ("external_id", _("External id")),
            ("any", _("Has a company")))},
        "score": {name: {"label": score_labels[name], "ops": list(o)} for name, o in defs.SCORE_FIELDS.items()},
        "attributes": [{"key": a.key, "label": a.label, "type": a.type, "choices": a.choices,
                        "ops": list(defs.ATTRIBUTE_OPS[a.type])} for a in AttributeDefinition.objects.for_tenant(tenant)],
        "choices": {"kind": dict(Customer.Kind.choices), "size": dict(Company.Size.choices), "rfm_group": {g: g for g in RFM_GROUPS}},
        "event_ops": list(defs.EVENT_OPS),
        "event_types": list(Event.BUILTIN_TYPES),
        "order_measures": {"count": _("number of purchases"), "total": _("total spent"), "days_since_last": _("days since last purchase")},
        "order_ops": list(defs.ORDER_OPS),
        "consent": {"purposes": dict(Consent.Purpose.choices), "channels": dict(Consent.Channel.choices),
                    "statuses": {"granted": _("granted"), "withdrawn": _("withdrawn"), "unknown": _("never asked")}},
        "segments": [{"id": s.pk, "name": s.name} for s in Segment.objects.for_tenant(tenant).order_by("name")],
        "labels": {"all": _("all of"), "any": _("any of"), "add_condition": _("Add condition"), "add_group": _("Add group"),
                   "remove": _("Remove"), "days": _("days"), "times": _("times"), "value": _("Value"), "match": _("Match"),
                   "within": _("within days (optional)")},
    }


class SegmentBuilderView(TenantViewMixin, View):
    """Create a segment, or change a rule segment's definition; both go through the same services."""

    required_perm = Perm.EDIT_DATA

    def _segment(self, segment_id: int | None) -> Segment | None:
        if segment_id is None:
            return None
        return selectors.get_segment(tenant=self.tenant, segment_id=segment_id)

    def _builtin(self, segment: Segment) -> HttpResponse:
        messages.error(self.request, _("Built-in segments are kept by their model and cannot be edited."))
        return redirect("segments:detail", tenant_slug=self.tenant.slug, segment_id=segment.pk)

    def _render(self, request: HttpRequest, form: SegmentForm, segment: Segment | None, status: int = 200) -> HttpResponse:
        return render(request, "customers/segment_builder.html", {
            "tenant": self.tenant, "membership": self.membership, "form": form, "segment": segment,
            "builder": builder_metadata(self.tenant),
        }, status=status)

    def get(self, request: HttpRequest, tenant_slug: str, segment_id: int | None = None) -> HttpResponse:
        segment = self._segment(segment_id)
        if segment is not None and segment.is_builtin:
            return self._builtin(segment)
        initial = {"name": segment.name, "description": segment.description, "definition": json.dumps(segment.definition)} if segment \
            else {"definition": json.dumps(EMPTY_DEFINITION)}
        return self._render(request, SegmentForm(initial=initial), segment)

    def post(self, request: HttpRequest, tenant_slug: str, segment_id: int | None = None) -> HttpResponse:
        segment = self._segment(segment_id)
        if segment is not None and segment.is_builtin:
            return self._builtin(segment)
        form = SegmentForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, segment, status=400)
        data = form.cleaned_data
        try:
            if segment is None:
                segment = services.create_segment(tenant=self.tenant, actor=request.user, name=data["name"],
                                                  description=data["description"], definition=data["definition"])
            else:
                services.update_segment(tenant=self.tenant, actor=request.user, segment=segment, name=data["name"],
                                        description=data["description"], definition=data["definition"])
        except DefinitionError as exc:
            for path, problems in exc.errors.items():
                form.add_error("definition", f"{path}: {' '.join(problems)}")
            return self._render(request, form, segment, status=400)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return self._render(request, form, segment, status=400)
        messages.success(request, _("Segment saved; its members are being built."))
        return redirect("segments:detail", tenant_slug=self.tenant.slug, segment_id=segment.pk)


class SegmentPreviewView(TenantViewMixin, View):
    """The builder's live answer: count and a sample for the definition being edited (nothing stored)."""

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        context: dict[str, Any] = {"tenant": self.tenant}
        try:
            context["preview"] = services.preview_definition(tenant=self.tenant, definition=json.loads(request.POST.get("definition", "")))
        except ValueError:
            context["errors"] = {"definition": [_("This is not valid JSON.")]}
        except DefinitionError as exc:
            context["errors"] = exc.errors
        return render(request, "customers/segment_builder.html#preview", context)


class SegmentDetailView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, segment_id: int) -> HttpResponse:
        segment = selectors.get_segment(tenant=self.tenant, segment_id=segment_id)
        page = keyset_page(selectors.list_members(tenant=self.tenant, segment=segment), before=request.GET.get("before"), size=PAGE_SIZE)
        context = {"tenant": self.tenant, "membership": self.membership, "segment": segment, "page": page, "members": page.items}
        if request.htmx and request.htmx.target == "member-rows":
            return render(request, "customers/segment_detail.html#members", context)
        sizes = list(segment.sizes.order_by("-day")[:90])[::-1]
        context.update({
            "changes": selectors.list_member_changes(tenant=self.tenant, segment=segment),
            "chart": {"labels": [s.day.isoformat() for s in sizes], "sizes": [s.size for s in sizes]},
            "definition_json": json.dumps(segment.definition, indent=2, ensure_ascii=False),
            "building": segment.status == Segment.Status.BUILDING,
        })
        return render(request, "customers/segment_detail.html", context)


class SegmentOverlapView(TenantViewMixin, View):
    """Loaded after the page (htmx): overlap is a join over two membership sets."""

    def get(self, request: HttpRequest, tenant_slug: str, segment_id: int) -> HttpResponse:
        segment = selectors.get_segment(tenant=self.tenant, segment_id=segment_id)
        rows = selectors.segment_overlap(tenant=self.tenant, segment=segment)
        return render(request, "customers/segment_detail.html#overlap", {"tenant": self.tenant, "segment": segment, "overlap": rows})


class SegmentRebuildView(TenantViewMixin, View):
    required_perm = Perm.RUN_JOBS

    def post(self, request: HttpRequest, tenant_slug: str, segment_id: int) -> HttpResponse:
        segment = selectors.get_segment(tenant=self.tenant, segment_id=segment_id)
        job = services.request_rebuild(tenant=self.tenant, actor=request.user, segment=segment)
        messages.success(request, _("Rebuild started."))
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)


class SegmentExportView(TenantViewMixin, View):
    required_perm = Perm.EXPORT_DATA

    def post(self, request: HttpRequest, tenant_slug: str, segment_id: int) -> HttpResponse:
        segment = selectors.get_segment(tenant=self.tenant, segment_id=segment_id)
        job = tenant_services.start_job(tenant=self.tenant, actor=request.user, actor_membership=self.membership,
                                        kind="customers_export", params={"filters": {"segment_id": segment.pk}})
        messages.success(request, _("Export started."))
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)


class SegmentDeleteView(TenantViewMixin, View):
    required_perm = Perm.EDIT_DATA

    def post(self, request: HttpRequest, tenant_slug: str, segment_id: int) -> HttpResponse:
        segment = selectors.get_segment(tenant=self.tenant, segment_id=segment_id)
        try:
            services.delete_segment(tenant=self.tenant, actor=request.user, segment=segment)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("segments:detail", tenant_slug=self.tenant.slug, segment_id=segment.pk)
        messages.success(request, _("Segment deleted."))
        return redirect("segments:list", tenant_slug=self.tenant.slug)


MODEL_JOBS = {"rfm": "predictions_rfm_clusters", "clusters": "predictions_rfm_clusters", "churn": "predictions_churn",
              "clv": "predictions_clv"}


class PredictionModelsView(TenantViewMixin, View):
    """What each model was trained on, when, how good it is; and a button to run it again."""

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        latest = selectors.latest_prediction_runs(tenant=self.tenant)
        models = [{"key": key, "label": label, "run": latest.get(key),
                   "history": list(selectors.list_prediction_runs(tenant=self.tenant, model=key)[:5])}
                  for key, label in PredictionRun.Model.choices]
        return render(request, "customers/prediction_models.html", {
            "tenant": self.tenant, "membership": self.membership, "models": models,
        })

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        kind = MODEL_JOBS.get(request.POST.get("model", ""))
        if kind is None:
            messages.error(request, _("Unknown model."))
            return redirect("segments:models", tenant_slug=self.tenant.slug)
        job = tenant_services.start_job(tenant=self.tenant, actor=request.user, actor_membership=self.membership, kind=kind)
        messages.success(request, _("Training started."))
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)
