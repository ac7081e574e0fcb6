"""DRF authentication by API key: `Authorization: Bearer <key>`, and nowhere else."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants import services
from tenants.models import ApiKey

_QUERY_KEY_NAMES = ("key", "api_key", "apikey", "token", "access_token")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        # A key in a URL ends up in proxy logs and browser history: refuse it outright.
        for name, value in request.query_params.items():
            if name.lower() in _QUERY_KEY_NAMES or value.startswith(services.API_KEY_PREFIX):
                raise exceptions.AuthenticationFailed(
                    _("API keys are accepted only in the Authorization header, never in the URL.")
                )
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _sep, raw_key = header.partition(" ")
        if keyword.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed(_("Use the header 'Authorization: Bearer <key>'."))
        api_key = services.authenticate_api_key(raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return api_key, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "b2p_<id>_<secret>"}
