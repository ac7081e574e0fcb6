"""Chainable filters on customers and events; portable between PostgreSQL and embedded SQLite."""

from __future__ import annotations

from typing import Any, Self

from django.db import connection

from tenants.scoping import TenantQuerySet


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


class CustomerQuerySet(TenantQuerySet):
    def active(self) -> Self:
        return self.filter(erased_at__isnull=True)

    def with_tag(self, tag: str) -> Self:
        if _is_postgres():
            return self.filter(tags__contains=[tag])  # GIN-indexed containment
        return self.filter(tags__icontains=f'"{tag}"')

    def with_attribute(self, key: str, value: Any) -> Self:
        if _is_postgres():
            return self.filter(attributes__contains={key: value})  # GIN-indexed containment
        return self.filter(**{f"attributes__{key}": value})

    def search(self, query: str) -> Self:
        query = query.strip().lower()
        if not query:
            return self
        return self.filter(search_text__contains=query)


class EventQuerySet(TenantQuerySet):
    def of_type(self, event_type: str) -> Self:
        return self.filter(type=event_type)
