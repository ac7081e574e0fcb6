from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from customers import seed
from tenants import services
from tenants.models import Membership, Tenant, User
from tenants.roles import Role

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.example"
DEMO_PASSWORD = "demo-owner-pass"  # noqa: S105 - published demo credentials, printed by make run
DEMO_TEAM = [
    ("marketer@demo.example", Role.MARKETER, "Maria Marketer"),
    ("analyst@demo.example", Role.ANALYST, "Anton Analyst"),
    ("viewer@demo.example", Role.VIEWER, "Vera Viewer"),
]


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo tenant with its team and synthetic customers, companies, orders, "
        "events and consents. Idempotent; deterministic with --seed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--customers", type=int, default=2000, help="customers to generate (default 2000)")
        parser.add_argument("--events-per-customer", type=float, default=10.0, help="mean behaviour events per customer")
        parser.add_argument(
            "--reset", action="store_true", help="delete the demo tenant's customers and what depends on them first"
        )
        parser.add_argument(
            "--workers", type=int, default=None,
            help="parallel writers on PostgreSQL (default: 2 from 100,000 customers on, else 1; each chunk commits alone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = self._tenant_and_team()
        # Outside the team's transaction: a parallel seed writes from other connections, which
        # must see the tenant.
        self._seed_customers(tenant, options)
        self.stdout.write(self.style.SUCCESS(f"Demo tenant '{tenant.slug}' is ready."))
        self.stdout.write(f"Sign in at /accounts/sign-in/ as {DEMO_OWNER} with password {DEMO_PASSWORD}")
        self.stdout.write(f"Other demo members ({', '.join(e for e, _r, _n in DEMO_TEAM)}) use the same password.")
        self.stdout.write(f"Customer portal: /p/{tenant.slug}/ — sign in with a demo customer's email; without EMAIL_URL the "
                          "sign-in link (emailed by the Celery worker) is printed in the worker's log, "
                          ".local/logs/worker.log under `make run`.")

    @transaction.atomic
    def _tenant_and_team(self) -> Tenant:
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant, _owner = services.create_tenant(
                name="Demo Telecom & Parts", slug=DEMO_SLUG, owner_email=DEMO_OWNER, owner_password=DEMO_PASSWORD
            )
        owner = User.objects.get(email=DEMO_OWNER)
        # The demo owner's password is reset on every seed so the printed credentials always work.
        owner.set_password(DEMO_PASSWORD)
        owner.full_name = owner.full_name or "Olga Owner"
        owner.save()
        for email, role, name in DEMO_TEAM:
            user = User.objects.filter(email=email).first() or User.objects.create_user(email, DEMO_PASSWORD, full_name=name)
            Membership.objects.for_tenant(tenant).get_or_create(tenant=tenant, user=user, defaults={"role": role})
        return tenant

    def _seed_customers(self, tenant: Tenant, options: dict[str, Any]) -> None:
        if options["reset"]:
            deleted = seed.delete_customer_data(tenant=tenant)
            self.stdout.write(f"Deleted {deleted:,} customers of '{tenant.slug}' and their data.")
        if seed.has_customers(tenant=tenant):
            self.stdout.write("Customers already seeded (use --reset to seed again).")
            return
        workers = options["workers"] or (2 if options["customers"] >= 100_000 else 1)
        counts = seed.seed_customers(
            tenant=tenant,
            customers=options["customers"],
            seed=options["seed"],
            events_per_customer=options["events_per_customer"],
            workers=workers,
            stdout=self.stdout,
        )
        self.stdout.write(f"Seeded {seed.summarize(counts)} in {counts['seconds']:.1f} s.")
        self._seed_segments(tenant)

    def _seed_segments(self, tenant: Tenant) -> None:
        """Two example rule segments and a predictions run, so the segments section has content.
        Their builds and the models run as jobs on the worker (visible on the jobs page)."""
        from customers.models import Segment
        from customers.segments import services as segment_services

        examples = {
            "Business buyers who buy again": {"match": "all", "conditions": [
                {"type": "profile", "field": "kind", "op": "eq", "value": "business_buyer"},
                {"type": "order", "measure": "count", "op": "gte", "value": 2}]},
            "Carts without a purchase (30 days)": {"match": "all", "conditions": [
                {"type": "event", "event_type": "add_to_cart", "op": "did", "within_days": 30},
                {"type": "order", "measure": "count", "op": "eq", "value": 0, "within_days": 30}]},
        }
        with transaction.atomic():
            for name, definition in examples.items():
                if not Segment.objects.for_tenant(tenant).filter(name=name).exists():
                    segment_services.create_segment(tenant=tenant, actor=None, name=name, definition=definition)
            services.start_job(tenant=tenant, actor=None, kind="predictions_refresh")
        self.stdout.write("Queued example segments and a predictions run (see Jobs once the worker is up).")
        self._seed_offers(tenant)

    def _seed_offers(self, tenant: Tenant) -> None:
        """The seed's catalogue as products, and offers of each kind, then a recommendation run."""
        from decimal import Decimal

        from offers.models import Offer, Product
        from offers.services import catalogue

        if Offer.objects.for_tenant(tenant).exists():
            return
        catalogue.upsert_products(tenant=tenant, rows=[
            {"sku": p.sku, "name": p.name, "category": p.category, "base_price": Decimal(p.price_cents) / 100, "currency": "EUR"}
            for p in seed.CATALOGUE])
        sku = {p.sku: p for p in Product.objects.for_tenant(tenant)}
        offers = [
            {"name": "15% off the A15 smartphone", "kind": "percent_off", "product_id": sku["DEV-PH-A15"].pk, "value": Decimal(15)},
            {"name": "Tariff M for 14.90", "kind": "fixed_price", "product_id": sku["TAR-M"].pk, "value": Decimal("14.90"),
             "eligibility": {"kinds": ["consumer"]}},
            {"name": "Repair kit: A15 display and battery", "kind": "bundle", "value": Decimal("99.00"),
             "items": [{"product_id": sku["SP-SCR-A15"].pk}, {"product_id": sku["SP-BAT-A15"].pk}],
             "eligibility": {"kinds": ["business_buyer"]}},
            {"name": "10 off a fast charger", "kind": "amount_off", "product_id": sku["ACC-CHG"].pk, "value": Decimal(10),
             "per_customer_cap": 1},
            {"name": "Build your tariff", "kind": "configurable", "base_price": Decimal("4.90"), "option_groups": [
                {"key": "data", "label": "Data", "options": [{"key": "5gb", "label": "5 GB", "price": "5"},
                                                             {"key": "20gb", "label": "20 GB", "price": "10"},
                                                             {"key": "unlimited", "label": "Unlimited", "price": "25"}]},
                {"key": "minutes", "label": "Minutes", "min_select": 0, "options": [
                    {"key": "300", "label": "300 minutes", "price": "3"}, {"key": "unlimited", "label": "Unlimited", "price": "8"}]},
                {"key": "extras", "label": "Extras", "min_select": 0, "max_select": 2, "options": [
                    {"key": "roaming", "label": "EU roaming", "price": "6", "requires": ["data.unlimited"]},
                    {"key": "kids", "label": "Kids filter", "price": "1"}]}]},
        ]
        with transaction.atomic():
            for priority, data in enumerate(reversed(offers)):
                catalogue.create_offer(tenant=tenant, actor=None,
                                       data={"status": "active", "currency": "EUR", "priority": priority, **data})
            services.start_job(tenant=tenant, actor=None, kind="recommendations_train")
        self.stdout.write(f"Created {len(offers)} demo offers over {len(sku)} products; queued a recommendation run.")
