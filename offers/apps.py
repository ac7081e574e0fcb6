from django.apps import AppConfig


class OffersConfig(AppConfig):
    name = "offers"

    def ready(self) -> None:
        # The offers app's sections of a person's GDPR export.
        from offers.services import exports  # noqa: F401
