"""The dashboard's bases: tenant resolution for /t/<tenant_slug>/ views and keyset pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.forms import Form
from django.http import HttpRequest, HttpResponse

from b2p_platform.exceptions import DomainError
from tenants.roles import Perm
from tenants.scoping import resolve_tenant

M = TypeVar("M", bound=Model)


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class TenantViewMixin:
    """Resolves the tenant from the URL slug and the user's membership, once, in dispatch().

    Unknown tenant and "not a member" are the same 404. `required_perm` guards the whole view;
    finer rules (who may change an owner) are the services' business.
    """

    required_perm: Perm = Perm.VIEW
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        tenant, membership = resolve_tenant(slug=kwargs["tenant_slug"], user=request.user)
        assert membership is not None
        request.tenant = self.tenant = tenant  # type: ignore[attr-defined]
        request.membership = self.membership = membership  # type: ignore[attr-defined]
        if not membership.can(self.required_perm):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context["tenant"] = self.tenant
        context["membership"] = self.membership
        return context

    def can(self, perm: Perm) -> bool:
        return self.membership.can(perm)


def add_domain_error(form: Form, exc: DomainError) -> None:
    """Show a service's refusal on the form field it names, or above the form."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


@dataclass
class KeysetPage(Generic[M]):
    items: list[M]
    next_before: int | None
    is_first: bool


def keyset_page(queryset: QuerySet[M], *, before: str | None, size: int = 50) -> KeysetPage[M]:
    """One page of a queryset ordered newest first, addressed by `?before=<id>`; never COUNTs."""
    ordered = queryset.order_by("-pk")
    cursor = int(before) if before and before.isdigit() else None
    if cursor is not None:
        ordered = ordered.filter(pk__lt=cursor)
    rows = list(ordered[: size + 1])
    has_more = len(rows) > size
    items = rows[:size]
    return KeysetPage(items=items, next_before=items[-1].pk if has_more else None, is_first=cursor is None)
