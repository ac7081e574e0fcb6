"""Reads for the customer pages: the list's search."""

from __future__ import annotations

import pytest

from customers import selectors
from customers import services as customer_services
from tenants.models import Tenant


@pytest.mark.parametrize(("query", "found"), [
    ("harry", ["h1", "h2"]),
    ("harry thomas", ["h1"]),  # the full name
    ("THOMAS5@", ["h1"]),  # part of an email, any case
    ("@vektor", ["h1"]),  # the company's domain
    ("elektro64.exa", ["h1"]),
    ("985928", ["h1"]),  # the end of a phone number
    ("crm-00", ["h1", "h2"]),  # part of an external id
    ("nobody", []),
])
def test_search_finds_customers_by_part_of_name_email_phone_or_id(tenant: Tenant, other_tenant: Tenant, query: str,
                                                                   found: list[str]) -> None:
    # given
    customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "CRM-001", "first_name": "Harry", "last_name": "Thomas", "email": "harry.thomas5@vektorelektro64.example",
         "phone": "+44 7470 985928"},
        {"external_id": "crm-002", "first_name": "Harry", "last_name": "Smith", "email": "h.smith@inbox.example"},
    ])
    customer_services.upsert_customers(tenant=other_tenant, rows=[
        {"external_id": "CRM-001", "first_name": "Harry", "last_name": "Thomas", "email": "harry.thomas5@vektorelektro64.example"}])
    names = {"CRM-001": "h1", "crm-002": "h2"}

    # when
    customers = selectors.list_customers(tenant=tenant, filters=selectors.CustomerFilters(q=query))

    # then
    assert sorted(names[c.external_id] for c in customers) == found
