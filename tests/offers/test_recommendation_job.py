"""The per-tenant recommendation job: what it writes, for whom, with which reasons, and only for
its own tenant. The shop below makes the right answers unambiguous: consumers buy a phone with
its case and charger, business buyers buy spare parts, and one product is new."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from django.utils import timezone
from django.utils.translation import override

from customers import services as customer_services
from customers.models import Customer
from offers import recommendations
from offers.models import Offer, OfferItem, OfferRequest, Product, Recommendation
from offers.recommender import evaluation
from tenants import services as tenant_services
from tenants import tasks
from tenants.models import JobRun, Tenant

FANS, SHOPS = 12, 12
CATALOGUE = [
    ("PH-X", "Phone X", "device", {"brand": "acme"}),
    ("CASE-X", "Case for Phone X", "accessory", {"brand": "acme", "fits": "phone-x"}),
    ("CHG", "Fast charger", "accessory", {"brand": "acme"}),
    ("PART-1", "Display module", "spare_part", {"brand": "fixit"}),
    ("PART-2", "Battery module", "spare_part", {"brand": "fixit"}),
    ("TOOLS", "Repair tool kit", "spare_part", {"brand": "fixit"}),
    ("CASE-NEW", "Leather case for Phone X", "accessory", {"brand": "acme", "fits": "phone-x"}),  # nobody touched it yet
]


def _order(number: str, customer: str, *skus: str) -> dict[str, Any]:
    return {"external_id": number, "customer_external_id": customer, "ordered_at": "2026-02-01T10:00:00Z",
            "lines": [{"sku": sku, "name": sku, "quantity": 1, "unit_price": "10.00"} for sku in skus]}


def _offer(tenant: Tenant, name: str, kind: str, product: Product | None = None, **fields: Any) -> Offer:
    fields.setdefault("status", Offer.Status.ACTIVE)
    return Offer.objects.create(tenant=tenant, name=name, kind=kind, product=product, value=Decimal("10"), currency="EUR", **fields)


def build_shop(tenant: Tenant) -> dict[str, Any]:
    products = {sku: Product.objects.create(tenant=tenant, sku=sku, name=name, category=category, attributes=attributes,
                                            base_price=Decimal("10.00"), currency="EUR")
                for sku, name, category, attributes in CATALOGUE}
    customer_services.upsert_customers(tenant=tenant, rows=[
        *({"external_id": f"fan-{i}"} for i in range(FANS)),
        *({"external_id": f"shop-{i}", "kind": "business_buyer"} for i in range(SHOPS)),
        {"external_id": "phone-buyer"}, {"external_id": "private"}, {"external_id": "viewer"},
        {"external_id": "new-consumer"}, {"external_id": "new-business", "kind": "business_buyer"},
    ])
    orders = [_order(f"fan-order-{i}", f"fan-{i}", "PH-X", "CASE-X", "CHG") for i in range(FANS)]
    orders += [_order(f"shop-order-{i}", f"shop-{i}", "PART-1", "PART-2", "TOOLS") for i in range(SHOPS)]
    orders += [_order("buyer-order", "phone-buyer", "PH-X"), _order("private-order", "private", "PH-X")]
    assert not customer_services.record_orders(tenant=tenant, rows=orders).rejected
    assert not customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "viewer-1", "type": "product_view", "customer_external_id": "viewer", "occurred_at": "2026-02-02T10:00:00Z",
         "properties": {"product_id": products["PART-1"].pk}},
        {"event_id": "fan-0-view", "type": "product_view", "customer_external_id": "fan-0", "occurred_at": "2026-02-02T10:00:00Z",
         "properties": {"sku": "TOOLS"}},
    ]).rejected
    people = {c.external_id: c for c in Customer.objects.for_tenant(tenant)}
    customer_services.record_consent(tenant=tenant, customer=people["private"], channel="all", purpose="personalization",
                                     status="withdrawn", source="portal")

    offers = {
        "phone": _offer(tenant, "10% off Phone X", Offer.Kind.PERCENT_OFF, products["PH-X"]),
        "case": _offer(tenant, "Case deal", Offer.Kind.PERCENT_OFF, products["CASE-X"]),
        "charger": _offer(tenant, "Charger deal", Offer.Kind.AMOUNT_OFF, products["CHG"]),
        "part1": _offer(tenant, "Display deal", Offer.Kind.PERCENT_OFF, products["PART-1"]),
        "part2": _offer(tenant, "Battery price", Offer.Kind.FIXED_PRICE, products["PART-2"]),
        "new_case": _offer(tenant, "Leather case launch", Offer.Kind.PERCENT_OFF, products["CASE-NEW"]),
        "bundle": _offer(tenant, "Case + charger", Offer.Kind.BUNDLE),
        "tariff": _offer(tenant, "Build your business tariff", Offer.Kind.CONFIGURABLE),
        "paused": _offer(tenant, "Paused case deal", Offer.Kind.PERCENT_OFF, products["CASE-X"], status=Offer.Status.PAUSED),
        "draft": _offer(tenant, "Draft charger deal", Offer.Kind.PERCENT_OFF, products["CHG"], status=Offer.Status.DRAFT),
        "expired": _offer(tenant, "Last year's case deal", Offer.Kind.PERCENT_OFF, products["CASE-X"],
                          ends_at=timezone.now() - timedelta(days=1)),
        "future": _offer(tenant, "Next month's charger deal", Offer.Kind.PERCENT_OFF, products["CHG"],
                         starts_at=timezone.now() + timedelta(days=30)),
        "sold_out": _offer(tenant, "Sold-out display deal", Offer.Kind.PERCENT_OFF, products["PART-1"], total_cap=1, claims_count=1),
        "spent": _offer(tenant, "Battery deal, budget spent", Offer.Kind.PERCENT_OFF, products["PART-2"], budget=Decimal("50"),
                        spent=Decimal("50")),
    }
    for sku in ("CASE-X", "CHG"):
        OfferItem.objects.create(tenant=tenant, offer=offers["bundle"], product=products[sku])
    for i in range(4):  # business buyers claim the configurable tariff
        OfferRequest.objects.create(tenant=tenant, offer=offers["tariff"], customer=people[f"shop-{i}"], price=Decimal("20"),
                                    list_price=Decimal("20"), currency="EUR")
    return {"products": products, "offers": offers, "people": people}


def rows_of(tenant: Tenant, customer: Customer) -> list[Recommendation]:
    return list(Recommendation.objects.for_tenant(tenant).filter(customer=customer).order_by("rank"))


def test_training_writes_each_customer_ranked_offers_with_reasons(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)

    result = recommendations.train_recommendations(tenant=tenant, top_n=5)

    customers = Customer.objects.for_tenant(tenant).count()
    assert result["customers"] == customers
    assert result["offers"] == 8  # the active ones in their window, with cap and budget left
    assert result["interactions"] == FANS * 3 + SHOPS * 3 + 1 + 1 + 1 + 4  # orders (not the opted-out one), 2 views, claims
    assert result["not_personalized"] == 1 and result["cold_start"] == 2
    assert result["personalized"] == customers - 3
    assert result["new_products"] == 1
    assert result["rows"] == Recommendation.objects.for_tenant(tenant).count() > 0
    assert result["fit_seconds"] >= 0
    rows = list(Recommendation.objects.for_tenant(tenant))
    by_customer: dict[int, list[Recommendation]] = {}
    for row in rows:
        by_customer.setdefault(row.customer_id, []).append(row)
    assert set(by_customer) == {c.pk for c in shop["people"].values()}
    for ranked in by_customer.values():
        ranked.sort(key=lambda r: r.rank)
        assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
        assert all(a.score >= b.score for a, b in pairwise(ranked))
    assert {r.model for r in rows} == {"blend"}
    assert {r.reason["code"] for r in rows} <= set(recommendations.CODES)


def test_buyer_of_a_phone_gets_its_accessories_ranked_above_spare_parts(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)
    offers = shop["offers"]

    recommendations.train_recommendations(tenant=tenant)

    ranked = rows_of(tenant, shop["people"]["phone-buyer"])
    rank = {r.offer_id: r.rank for r in ranked}
    assert offers["phone"].pk not in rank  # already bought
    for accessory in ("case", "charger", "bundle"):
        for unrelated in ("part1", "part2"):
            assert rank[offers[accessory].pk] < rank[offers[unrelated].pk], (accessory, unrelated)
    case = next(r for r in ranked if r.offer_id == offers["case"].pk)
    assert case.reason == {"code": "bought", "product": "Phone X", "sku": "PH-X"}
    with override("en"):
        assert recommendations.reason_text(case.reason) == "Because you bought Phone X"


def test_a_new_product_is_recommended_for_its_likeness_to_what_they_bought(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)

    recommendations.train_recommendations(tenant=tenant)

    fan = rows_of(tenant, shop["people"]["fan-1"])
    new_case = next(r for r in fan if r.offer_id == shop["offers"]["new_case"].pk)
    assert new_case.reason == {"code": "similar_to", "product": "Case for Phone X", "sku": "CASE-X"}
    assert fan[0].offer_id == new_case.offer_id  # the one consumer product they do not own yet


def test_an_opted_out_customer_gets_the_non_personal_ranking_and_is_told_so(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)

    recommendations.train_recommendations(tenant=tenant)

    ranked = rows_of(tenant, shop["people"]["private"])
    assert ranked and {r.reason["code"] for r in ranked} == {"not_personalized"}
    assert shop["offers"]["phone"].pk in {r.offer_id for r in ranked}  # their own purchase is not used either
    with override("en"):
        assert "not to personalize" in recommendations.reason_text(ranked[0].reason)


def test_opt_out_follows_the_latest_personalization_entry(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)
    people = shop["people"]
    customer_services.record_consent(tenant=tenant, customer=people["private"], channel="email", purpose="personalization",
                                     status="granted", source="portal", occurred_at=timezone.now() + timedelta(seconds=1))
    customer_services.record_consent(tenant=tenant, customer=people["fan-2"], channel="email", purpose="marketing",
                                     status="withdrawn", source="portal")

    opted_out = recommendations.personalization_opt_outs(tenant=tenant)

    assert opted_out == set()  # granted again later; a marketing withdrawal is not about personalization


@pytest.mark.parametrize(("who", "kind", "expected_first"), [
    ("new-consumer", "consumer", {"phone", "case", "charger", "bundle"}),
    ("new-business", "business_buyer", {"part1", "part2", "tariff"}),
])
def test_a_new_customer_gets_what_is_popular_with_their_kind(tenant: Tenant, other_tenant: Tenant, who: str, kind: str,
                                                            expected_first: set[str]) -> None:
    shop = build_shop(tenant)

    recommendations.train_recommendations(tenant=tenant)

    ranked = rows_of(tenant, shop["people"][who])
    assert {r.reason["code"] for r in ranked} == {"popular_with_kind"}
    assert ranked[0].reason == {"code": "popular_with_kind", "kind": kind}
    assert ranked[0].offer_id in {shop["offers"][name].pk for name in expected_first}


def test_a_configurable_offer_scores_by_its_claims(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)

    recommendations.train_recommendations(tenant=tenant)

    shop_buyer = rows_of(tenant, shop["people"]["shop-7"])  # did not claim it, but buys like those who did
    assert shop_buyer[0].offer_id == shop["offers"]["tariff"].pk
    # New, and nothing like what they buy: at the floor of their list (other offers they have no
    # link to sit there too, equal to float precision, so their order among themselves is not asserted).
    new_case = next(r for r in shop_buyer if r.offer_id == shop["offers"]["new_case"].pk)
    assert new_case.score <= min(r.score for r in shop_buyer) + 1e-5
    assert new_case.reason == {"code": "popular"}
    claimed = rows_of(tenant, shop["people"]["shop-0"])
    assert shop["offers"]["tariff"].pk not in {r.offer_id for r in claimed}


def test_inactive_expired_future_and_used_up_offers_never_appear(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)
    excluded = {shop["offers"][name].pk for name in ("paused", "draft", "expired", "future", "sold_out", "spent")}

    recommendations.train_recommendations(tenant=tenant, top_n=50)

    assert not Recommendation.objects.for_tenant(tenant).filter(offer_id__in=excluded).exists()


def test_training_one_tenant_leaves_another_tenants_rows_alone(tenant: Tenant, other_tenant: Tenant) -> None:
    build_shop(tenant)
    theirs = build_shop(other_tenant)
    recommendations.train_recommendations(tenant=other_tenant)
    before = sorted(Recommendation.objects.for_tenant(other_tenant).values_list("pk", "customer_id", "offer_id", "rank", "score"))

    recommendations.train_recommendations(tenant=tenant)

    after = sorted(Recommendation.objects.for_tenant(other_tenant).values_list("pk", "customer_id", "offer_id", "rank", "score"))
    assert after == before and before
    ours = Recommendation.objects.for_tenant(tenant)
    assert not ours.filter(customer_id__in=[c.pk for c in theirs["people"].values()]).exists()
    assert not ours.filter(offer_id__in=[o.pk for o in theirs["offers"].values()]).exists()
    assert set(ours.values_list("customer__tenant_id", flat=True)) == {tenant.pk}


def test_running_twice_replaces_the_rows(tenant: Tenant, other_tenant: Tenant) -> None:
    build_shop(tenant)
    first = recommendations.train_recommendations(tenant=tenant)
    first_ids = set(Recommendation.objects.for_tenant(tenant).values_list("pk", flat=True))

    second = recommendations.train_recommendations(tenant=tenant)

    rows = list(Recommendation.objects.for_tenant(tenant).values_list("pk", "customer_id", "offer_id"))
    assert len(rows) == first["rows"] == second["rows"] == second["replaced_rows"]
    assert len({(customer, offer) for _, customer, offer in rows}) == len(rows)  # no duplicates
    assert not first_ids & {pk for pk, _, _ in rows}


def test_a_customer_deleted_while_scoring_gets_no_rows_and_the_run_succeeds(tenant: Tenant, other_tenant: Tenant,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shop = build_shop(tenant)
    gone = shop["people"]["fan-3"]
    replace = recommendations._RowWriter.replace

    def delete_then_replace(writer: Any) -> tuple[int, int]:
        Customer.objects.for_tenant(tenant).filter(pk=gone.pk).delete()
        return replace(writer)

    monkeypatch.setattr(recommendations._RowWriter, "replace", delete_then_replace)

    result = recommendations.train_recommendations(tenant=tenant)

    assert result["rows"] == Recommendation.objects.for_tenant(tenant).count() > 0
    assert not Recommendation.objects.for_tenant(tenant).filter(customer_id=gone.pk).exists()


def test_without_rankable_offers_the_old_rows_go(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)
    recommendations.train_recommendations(tenant=tenant)
    Offer.objects.for_tenant(tenant).update(status=Offer.Status.ARCHIVED)

    result = recommendations.train_recommendations(tenant=tenant)

    assert result["rows"] == 0 and result["offers"] == 0
    assert not Recommendation.objects.for_tenant(tenant).exists()
    assert shop


def test_the_job_trains_for_its_tenant_with_progress(tenant: Tenant, other_tenant: Tenant, member: Any) -> None:
    build_shop(tenant)
    theirs = sorted(Recommendation.objects.for_tenant(other_tenant).values_list("pk", "customer_id", "offer_id", "score"))
    job = tenant_services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="recommendations_train",
                                    params={"top_n": 3})

    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)

    job.refresh_from_db()
    customers = Customer.objects.for_tenant(tenant).count()
    assert (job.status, job.progress, job.total, job.processed) == (JobRun.Status.SUCCEEDED, 100, customers, customers)
    assert job.result["rows"] == Recommendation.objects.for_tenant(tenant).count() <= 3 * customers
    assert sorted(Recommendation.objects.for_tenant(other_tenant).values_list("pk", "customer_id", "offer_id", "score")) == theirs
    assert theirs  # the look-alike tenant has a row of its own


def test_the_job_rejects_a_bad_top_n(tenant: Tenant, other_tenant: Tenant, member: Any) -> None:
    job = tenant_services.start_job(tenant=tenant, actor=member.user, actor_membership=member, kind="recommendations_train",
                                    params={"top_n": 5000})

    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == JobRun.Status.FAILED and "top_n" in job.error


def test_load_tenant_reads_product_ids_and_claims_and_leaves_out_excluded_people(tenant: Tenant, other_tenant: Tenant) -> None:
    shop = build_shop(tenant)
    people = shop["people"]

    dataset = evaluation.load_tenant(tenant, exclude_customers={people["private"].pk})

    cell = {(int(dataset.users[r]), dataset.items[c]): w for r, c, w in zip(*dataset.interactions.nonzero(),
                                                                            dataset.interactions.data, strict=True)}
    assert cell[(people["viewer"].pk, "PART-1")] == pytest.approx(0.25)  # named by product_id
    assert cell[(people["shop-0"].pk, f"offer:{shop['offers']['tariff'].pk}")] == 1.0  # a claim
    assert cell[(people["fan-0"].pk, "TOOLS")] == pytest.approx(0.25)
    assert str(people["private"].pk) not in dataset.users


@pytest.mark.parametrize(("reason", "text"), [
    ({"code": "bought", "product": "Phone X"}, "Because you bought Phone X"),
    ({"code": "viewed", "product": "Phone X"}, "Because you looked at Phone X"),
    ({"code": "similar_to", "product": "Case"}, "New, and similar to Case"),
    ({"code": "popular_with_kind", "kind": "business_buyer"}, "Popular with business buyers like you"),
    ({"code": "popular_with_kind", "kind": "consumer"}, "Popular with customers like you"),
    ({"code": "not_personalized"}, "Popular right now — you asked us not to personalize your offers"),
    ({"code": "popular"}, "Popular with our customers"),
    ({"code": "bought"}, "Because of what you bought before"),
    ({"code": "unheard-of"}, "Recommended for you"),
])
def test_reason_text_renders_every_code(reason: dict[str, Any], text: str) -> None:
    with override("en"):
        assert recommendations.reason_text(reason) == text


def test_reason_text_speaks_the_active_language() -> None:
    with override("ru"):
        assert recommendations.reason_text({"code": "bought", "product": "Phone X"}) == "Потому что вы купили Phone X"


def test_nightly_task_queues_one_training_job_per_tenant_with_active_offers(tenant: Tenant, other_tenant: Tenant,
                                                                            django_capture_on_commit_callbacks: Any) -> None:
    from offers import tasks
    from tenants.models import JobRun

    with django_capture_on_commit_callbacks():
        queued = tasks.train_all_recommendations()
    # the look-alike tenant has active offers; `tenant` has none
    assert queued == 1
    assert JobRun.objects.for_tenant(other_tenant).filter(kind="recommendations_train").count() == 1
    assert not JobRun.objects.for_tenant(tenant).filter(kind="recommendations_train").exists()
