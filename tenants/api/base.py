from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.request import Request

from tenants.api.permissions import ApiKeyRateThrottle, DefaultCursorPagination, HasApiKeyScope, IsApiKey
from tenants.scoping import resolve_tenant

__all__ = ["ApiKeyRateThrottle", "DefaultCursorPagination", "HasApiKeyScope", "IsApiKey", "TenantScopedViewSet"]


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Base of every API viewset: the tenant comes from the key, and every query is scoped to it.

    Subclasses define `base_queryset()` and `scope_resource`; they may not override
    `get_queryset`/`get_object`, so no endpoint can forget the tenant filter.
    """

    scope_resource: ClassVar[str] = ""
    _guarded: ClassVar[tuple[str, ...]] = ("get_queryset", "get_object")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._guarded:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {name}; define base_queryset() instead")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        tenant, _membership = resolve_tenant(api_key_tenant_id=request.auth.tenant_id)
        request.tenant = tenant  # type: ignore[attr-defined]

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return self.base_queryset().none()
        return self.base_queryset().for_tenant(self.request.tenant)
