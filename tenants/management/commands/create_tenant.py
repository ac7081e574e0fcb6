import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from b2p_platform.exceptions import DomainError
from tenants import services


class Command(BaseCommand):
    help = "Create a tenant and its owner (the owner account is created when the email is new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--locale", default="en", choices=["en", "ru"])
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--currency", default="EUR")
        parser.add_argument("--password", default="", help="Owner password for a new account (default: generated)")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(12)
        from tenants.models import User

        is_new_user = not User.objects.filter(email=options["owner_email"].lower()).exists()
        try:
            tenant, user = services.create_tenant(
                name=options["name"] or options["slug"].replace("-", " ").title(),
                slug=options["slug"],
                owner_email=options["owner_email"],
                owner_password=password,
                locale=options["locale"],
                timezone_name=options["timezone"],
                currency=options["currency"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except Exception as exc:  # a ValidationError from full_clean names the bad field
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug} created; owner {user.email}"))
        if is_new_user:
            self.stdout.write(f"Owner password: {password}")
