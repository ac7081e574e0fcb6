"""The tenant scope: the one place that decides which tenant a query, request or task belongs to.

Every tenant-owned model inherits `TenantOwnedModel`. Its default manager fails closed: a query
that was not narrowed with `.for_tenant(tenant)` raises `TenantScopeError` instead of returning
every tenant's rows. Platform code that really needs all tenants (Django admin, the stalled-job
sweeper) says so with `.unscoped()`, which is easy to grep for and review.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

from django.db import models
from django.http import Http404

if TYPE_CHECKING:
    from tenants.models import Membership, Tenant, User


class TenantScopeError(RuntimeError):
    """A tenant-owned query was evaluated without a tenant scope."""


_validation_bypass: ContextVar[bool] = ContextVar("tenant_scope_validation_bypass", default=False)


@contextmanager
def _model_validation() -> Iterator[None]:
    """Django's own uniqueness checks in full_clean() query the default manager unscoped; they
    only ask "does a clashing row exist", so they may look across tenants."""
    token = _validation_bypass.set(True)
    try:
        yield
    finally:
        _validation_bypass.reset(token)


class TenantQuerySet(models.QuerySet):
    _tenant_scoped: bool = False

    def for_tenant(self, tenant: Tenant | int) -> Self:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        if tenant_id is None:
            raise TenantScopeError("for_tenant() needs a saved tenant")
        clone = self.filter(tenant_id=tenant_id)
        clone._tenant_scoped = True
        return clone

    def unscoped(self) -> Self:
        """All tenants' rows. Only for platform staff tools and cross-tenant maintenance."""
        clone = self._chain()
        clone._tenant_scoped = True
        return clone

    def none(self) -> Self:
        clone = super().none()
        clone._tenant_scoped = True  # an empty result leaks nothing
        return clone

    def _clone(self) -> Self:
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def _check_scope(self) -> None:
        # A related manager reached from an already-loaded tenant-owned row (customer.events)
        # is scoped by its parent; Django marks those querysets with _known_related_objects.
        if not (self._tenant_scoped or self._known_related_objects or _validation_bypass.get()):
            raise TenantScopeError(
                f"{self.model.__name__} queried outside a tenant scope: "
                "use .for_tenant(tenant) (or .unscoped() in platform code)"
            )

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._check_scope()
        super()._fetch_all()

    def iterator(self, *args: Any, **kwargs: Any) -> Any:
        self._check_scope()
        return super().iterator(*args, **kwargs)

    def count(self) -> int:
        if self._result_cache is None:
            self._check_scope()
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._check_scope()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._check_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._check_scope()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._check_scope()
        return super().delete()

    def explain(self, *args: Any, **kwargs: Any) -> str:
        self._check_scope()
        return super().explain(*args, **kwargs)


TenantManager = models.Manager.from_queryset(TenantQuerySet)


class TenantOwnedModel(models.Model):
    """Base of every tenant-owned row: an indexed tenant FK and a fail-closed default manager."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=True, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True

    def validate_unique(self, exclude: Any = None) -> None:
        with _model_validation():
            super().validate_unique(exclude=exclude)

    def validate_constraints(self, exclude: Any = None) -> None:
        with _model_validation():
            super().validate_constraints(exclude=exclude)


def resolve_tenant(
    *,
    slug: str | None = None,
    user: User | None = None,
    api_key_tenant_id: int | None = None,
    portal_tenant_id: int | None = None,
    public: bool = False,
) -> tuple[Tenant, Membership | None]:
    """The single access rule. Unknown and forbidden tenants are both a 404.

    - dashboard `/t/<slug>/`: an active tenant the signed-in user is a member of;
    - API `/api/v1/`: the tenant the authenticated key is bound to (nothing in the request body);
    - portal `/p/<slug>/`: the tenant named in the URL, which must match the portal session's;
    - public pages of a tenant (portal sign-in, lead forms): `public=True`, any active tenant.
    """
    from tenants.models import Membership, Tenant

    tenants = Tenant.objects.filter(is_active=True)
    if api_key_tenant_id is not None:
        tenant = tenants.filter(pk=api_key_tenant_id).first()
        if tenant is None:
            raise Http404
        return tenant, None
    if slug is None:
        raise Http404
    tenant = tenants.filter(slug=slug).first()
    if tenant is None:
        raise Http404
    if portal_tenant_id is not None:
        if portal_tenant_id != tenant.pk:
            raise Http404
        return tenant, None
    if public:
        return tenant, None
    if user is None or not user.is_authenticated:
        raise Http404
    membership = Membership.objects.for_tenant(tenant).filter(user=user).first()
    if membership is None:
        raise Http404
    return tenant, membership
