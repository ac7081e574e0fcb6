"""Permission, throttle and paging classes named in REST_FRAMEWORK settings.

Kept apart from the viewset base: DRF imports these while `rest_framework.views` is loading,
so this module must not import views or viewsets.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import permissions, throttling
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from tenants import services
from tenants.models import ApiKey


class IsApiKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey)


class HasApiKeyScope(permissions.BasePermission):
    """Fail closed: a view must name its `scope_resource`; reads need `:read`, writes `:write`."""

    message = "This API key lacks the scope for this resource."

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        resource = getattr(view, "scope_resource", None)
        if not isinstance(api_key, ApiKey) or not resource:
            return False
        write = getattr(view, "scope_write", None)
        if write is None:
            write = request.method not in permissions.SAFE_METHODS
        allowed = services.api_key_allows(api_key, resource, write)
        if not allowed:
            self.message = f"This API key needs the scope {resource}:{'write' if write else 'read'}."
        return allowed


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per-key rate from the key's own setting or API_KEY_DEFAULT_RATE; 429 with Retry-After.

    A fixed window counted with one cache INCR per request. DRF's default keeps a list of every
    request's time in the window and rewrites it on each request, which at thousands of requests
    a minute cost more than the endpoints themselves (measured: whoami fell from 379 to 202
    requests/s as the list grew). The price is that a burst may straddle two windows.
    """

    scope = "api_key"
    _wait: float = 0.0

    def get_rate(self) -> str:
        return settings.API_KEY_DEFAULT_RATE

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        self.num_requests, self.duration = self.parse_rate(api_key.rate_limit or settings.API_KEY_DEFAULT_RATE)
        now = self.timer()
        window = int(now // self.duration)
        key = f"throttle:api_key:{api_key.pk}:{window}"
        self.cache.add(key, 0, timeout=self.duration + 1)  # atomic: only the window's first request creates it
        try:
            count = self.cache.incr(key)
        except ValueError:  # expired between add and incr
            self.cache.set(key, 1, timeout=self.duration + 1)
            count = 1
        self._wait = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self._wait, 1.0)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None
        return f"throttle:api_key:{request.auth.pk}"


class DefaultCursorPagination(CursorPagination):
    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 500
