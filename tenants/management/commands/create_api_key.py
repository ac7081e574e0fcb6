from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from b2p_platform.exceptions import DomainError
from tenants import services
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once. Scopes: " + " ".join(services.API_SCOPES)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--scopes", nargs="+", required=True, help="e.g. customers:write jobs:read")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--rate-limit", default="", help="e.g. 600/min (default: platform default)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['slug']!r}")
        scopes = [s for raw in options["scopes"] for s in raw.replace(",", " ").split()]
        try:
            api_key, raw_key = services.create_api_key(
                tenant=tenant, actor=None, name=options["name"], scopes=scopes, rate_limit=options["rate_limit"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Key {api_key.prefix} for {tenant.slug} with scopes {', '.join(api_key.scopes)}.")
        self.stderr.write("The key is shown once and stored only as a hash:")
        self.stdout.write(raw_key)
