"""The option groups of a configurable offer: one set of rules (offers.services.option_groups)
for the dashboard's builder and the API, every problem reported at once by its path."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from b2p_platform.exceptions import DomainError
from offers.models import Offer, Option, OptionGroup
from offers.services import catalogue
from offers.services.option_groups import OptionGroupsInvalid, clean_option_groups
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

TARIFF: list[dict[str, Any]] = [
    {"key": "data", "label": "Data", "min_select": 1, "max_select": 1, "options": [
        {"key": "5gb", "label": "5 GB", "price": "7.00"},
        {"key": "20gb", "label": "20 GB", "price": "15.00"}]},
    {"key": "minutes", "label": "Minutes", "min_select": 0, "max_select": 1, "options": [
        {"key": "300", "label": "300 minutes", "price": 3},
        {"key": "unlimited", "label": "Unlimited", "price": "10", "requires": ["data.20gb"], "excludes": ["data.5gb"]}]},
]


def _tariff() -> list[dict[str, Any]]:
    return copy.deepcopy(TARIFF)


def _errors(groups: Any) -> dict[str, list[str]]:
    with pytest.raises(OptionGroupsInvalid) as caught:
        clean_option_groups(groups)
    return caught.value.errors


def test_groups_are_saved_in_order_with_prices_and_rules(tenant: Tenant) -> None:
    # when
    offer = catalogue.create_offer(tenant=tenant, actor="test", data={
        "name": "Tariff", "kind": "configurable", "status": "active", "base_price": Decimal("5"), "currency": "EUR",
        "option_groups": _tariff()})

    # then
    groups = list(OptionGroup.objects.for_tenant(tenant).filter(offer=offer))
    assert [(g.key, g.label, g.min_select, g.max_select, g.position) for g in groups] == [
        ("data", "Data", 1, 1, 0), ("minutes", "Minutes", 0, 1, 1)]
    unlimited = Option.objects.for_tenant(tenant).get(group=groups[1], key="unlimited")
    assert (unlimited.price, unlimited.requires, unlimited.excludes, unlimited.position) == (
        Decimal("10.00"), ["data.20gb"], ["data.5gb"], 1)
    assert Option.objects.for_tenant(tenant).get(group=groups[1], key="300").price == Decimal("3.00")


def _set(groups: list[dict[str, Any]], path: str, value: Any) -> list[dict[str, Any]]:
    *parents, last = path.split(".")
    node: Any = groups
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return groups


@pytest.mark.parametrize(("path", "value", "error_path"), [
    ("0.key", "", "0.key"),
    ("0.key", "5 GB", "0.key"),
    ("1.key", "data", "1.key"),
    ("0.options.1.key", "5gb", "0.options.1.key"),
    ("0.label", "  ", "0.label"),
    ("0.options.0.label", "x" * 121, "0.options.0.label"),
    ("1.options", [], "1.options"),
    ("0.min_select", 2, "0.min_select"),
    ("1.max_select", 0, "1.max_select"),
    ("1.min_select", "one", "1.min_select"),
    ("1.min_select", True, "1.min_select"),
    ("0.options.0.price", "-1", "0.options.0.price"),
    ("0.options.0.price", "1.234", "0.options.0.price"),
    ("0.options.0.price", "abc", "0.options.0.price"),
    ("0.options.0.price", "1e13", "0.options.0.price"),
    ("1.options.1.requires", ["data.1tb"], "1.options.1.requires"),
    ("1.options.1.requires", ["minutes.unlimited"], "1.options.1.requires"),
    ("1.options.1.requires", ["minutes.300"], "1.options.1.requires"),
    ("1.options.1.excludes", ["data.20gb"], "1.options.1.excludes"),
    ("1.options.1.excludes", "data.5gb", "1.options.1.excludes"),
    ("1", "minutes", "1"),
    ("1.options.0", 3, "1.options.0"),
])
def test_a_broken_rule_is_reported_at_its_path(path: str, value: Any, error_path: str) -> None:
    errors = _errors(_set(_tariff(), path, value))

    assert list(errors) == [error_path] and errors[error_path][0]


def test_min_select_may_not_exceed_the_number_of_options() -> None:
    groups = _set(_set(_tariff(), "0.min_select", 3), "0.max_select", 3)

    assert list(_errors(groups)) == ["0.min_select"]


def test_every_problem_is_reported_at_once() -> None:
    groups = _set(_set(_set(_tariff(), "0.key", ""), "0.options.1.price", "-5"), "1.max_select", 0)

    assert set(_errors(groups)) == {"0.key", "0.options.1.price", "1.max_select"}


def test_a_requirement_within_a_group_that_allows_several_is_fine() -> None:
    groups = _set(_set(_tariff(), "1.max_select", 2), "1.options.1.requires", ["minutes.300"])

    assert clean_option_groups(groups)[1]["options"][1]["requires"] == ["minutes.300"]


@pytest.mark.parametrize("groups", [[], None, {"key": "data"}])
def test_no_groups_at_all_is_an_error_on_the_field(groups: Any) -> None:
    with pytest.raises(DomainError) as caught:
        clean_option_groups(groups)
    assert caught.value.field == "option_groups" and not isinstance(caught.value, OptionGroupsInvalid)


def test_a_refused_update_keeps_the_groups_it_had(tenant: Tenant) -> None:
    # given
    offer = catalogue.create_offer(tenant=tenant, actor="test", data={
        "name": "Tariff", "kind": "configurable", "base_price": Decimal("5"), "currency": "EUR", "option_groups": _tariff()})

    # when
    with pytest.raises(OptionGroupsInvalid):
        catalogue.update_offer(tenant=tenant, actor="test", offer=offer, data={
            "option_groups": _set(_tariff(), "0.options.0.price", "-1")})

    # then
    assert OptionGroup.objects.for_tenant(tenant).filter(offer=offer).count() == 2
    assert Option.objects.for_tenant(tenant).filter(group__offer=offer).count() == 4


def test_the_api_answers_with_the_same_paths(api_client: APIClient, tenant: Tenant) -> None:
    response = api_client.post("/api/v1/offers/", {
        "name": "Tariff", "kind": "configurable", "base_price": "5", "currency": "EUR",
        "option_groups": _set(_tariff(), "1.options.1.requires", ["data.1tb"])}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()["option_groups"]) == ["1.options.1.requires"]
    assert not Offer.objects.for_tenant(tenant).exists()
