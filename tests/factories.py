from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey, AuditLog, JobRun, Membership, Tenant, User
from tenants.roles import Role

TEST_PASSWORD = "correct-horse-battery-staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    currency = "EUR"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    tenant = factory.SubFactory(TenantFactory)
    kind = "audit_export"
    status = JobRun.Status.SUCCEEDED
    progress = 100
    processed = 10
    total = 10
    finished_at = factory.LazyFunction(timezone.now)


class AuditLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditLog

    tenant = factory.SubFactory(TenantFactory)
    actor_label = "someone@example.com"
    action = "test.action"


def make_api_key(tenant: Tenant, scopes: list[str] | None = None, rate_limit: str = "") -> tuple[ApiKey, str]:
    """A key made through the real service, so tests see exactly what integrators get."""
    return services.create_api_key(
        tenant=tenant, actor=None, name="test key", scopes=scopes or list(services.API_SCOPES), rate_limit=rate_limit
    )


def seed_customer_data(tenant: Tenant) -> dict[str, Any]:
    """One of each customer-side row, with the same identifiers in every tenant (look-alikes)."""
    from customers import services as customer_services
    from customers.models import AttributeDefinition, Customer, LeadForm

    AttributeDefinition.objects.create(tenant=tenant, key="plan", label="Plan", type="choice", choices=["prepaid", "postpaid"])
    result = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "c-1", "email": "anna@example.com", "first_name": "Anna", "last_name": "Lookalike",
         "tags": ["vip"], "attributes": {"plan": "postpaid"}},
        {"external_id": "c-2", "email": "boris@example.com", "first_name": "Boris", "kind": "business_buyer",
         "company": {"name": "Parts & Co", "external_id": "co-1", "size": "10-49"}, "company_role": "purchasing_manager"},
    ])
    anna = result.objects[0]
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "e-1", "type": "page_view", "customer_external_id": "c-1", "occurred_at": "2026-01-05T10:00:00Z",
         "properties": {"path": f"/{tenant.slug}-secret-page"}},
    ])
    customer_services.record_orders(tenant=tenant, rows=[
        {"external_id": "o-1", "customer_external_id": "c-1", "ordered_at": "2026-01-06T10:00:00Z", "currency": "EUR",
         "lines": [{"sku": "sim-1", "name": "SIM", "quantity": 1, "unit_price": "10.00"}]},
    ])
    customer_services.record_consent(tenant=tenant, customer=anna, channel="email", purpose="marketing", status="granted", source="api")
    form = LeadForm.objects.create(tenant=tenant, name="Newsletter", slug="newsletter", consent_text="Yes, email me.",
                                   fields=[{"key": "email", "label": "Email", "type": "email", "required": True}])
    segment = _seed_segment(tenant, anna)
    offers = seed_offer_data(tenant, anna)
    return {"customer": anna, "buyer": result.objects[1], "lead_form": form, "segment": segment, **offers,
            "customer_obj_ids": list(Customer.objects.for_tenant(tenant).values_list("pk", flat=True))}


def _seed_segment(tenant: Tenant, customer: Any) -> Any:
    """A rule segment with its membership, history and size, and a scored customer with model runs."""
    from customers.models import CustomerScore, PredictionRun, Segment
    from customers.segments import membership

    segment = Segment.objects.create(
        tenant=tenant, name="VIP buyers", definition={"match": "all", "conditions": [
            {"type": "profile", "field": "tags", "op": "contains", "value": "vip"}]}, depends_on=["profile"],
    )
    membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)
    CustomerScore.objects.create(tenant=tenant, customer=customer, recency_days=3, frequency=1, monetary=10, r_score=5,
                                 f_score=1, m_score=1, rfm_group="new", cluster=0, churn_probability=0.2)
    PredictionRun.objects.create(tenant=tenant, model="churn", method="recency_rule", is_fallback=True,
                                 reason=f"{tenant.slug} history too short", n_customers=1)
    return segment


def seed_offer_data(tenant: Tenant, customer: Any) -> dict[str, Any]:
    """A product, a percent-off offer, a configurable tariff, a voucher, a claim and a recommendation."""
    from decimal import Decimal

    from offers.models import Offer, Option, OptionGroup, Product, Recommendation, Voucher
    from offers.services import claims

    product = Product.objects.create(tenant=tenant, sku="sim-1", name="SIM card", category="sim", base_price=Decimal("10.00"),
                                     currency="EUR")
    offer = Offer.objects.create(tenant=tenant, name="10% off SIM", kind="percent_off", status="active", product=product,
                                 value=Decimal("10"), currency="EUR")
    tariff = Offer.objects.create(tenant=tenant, name="Build your tariff", kind="configurable", status="active",
                                  base_price=Decimal("5.00"), currency="EUR")
    group = OptionGroup.objects.create(tenant=tenant, offer=tariff, key="data", label="Data")
    Option.objects.create(tenant=tenant, group=group, key="5gb", label="5 GB", price=Decimal("7.00"))
    voucher = Voucher.objects.create(tenant=tenant, offer=offer, code=f"{tenant.slug.upper()}-CODE")
    request = claims.claim_offer(tenant=tenant, customer=customer, offer_id=offer.pk, idempotency_key="seed-1").request
    Recommendation.objects.create(tenant=tenant, customer=customer, offer=offer, score=0.9, rank=1, reason={"code": "bought"},
                                  model="seed")
    return {"product": product, "offer": offer, "tariff": tariff, "voucher": voucher, "offer_request": request}
