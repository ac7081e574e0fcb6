from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

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
    help = "Create (or refresh) the demo tenant with its team. Idempotent; deterministic with --seed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--customers", type=int, default=2000, help="used once the customers app seeds data")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
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
        self.stdout.write(self.style.SUCCESS(f"Demo tenant '{tenant.slug}' is ready."))
        self.stdout.write(f"Sign in at /accounts/sign-in/ as {DEMO_OWNER} with password {DEMO_PASSWORD}")
        self.stdout.write(f"Other demo members ({', '.join(e for e, _r, _n in DEMO_TEAM)}) use the same password.")
