from django.apps import AppConfig


class OffersConfig(AppConfig):
    name = "offers"

    def ready(self) -> None:
        # The offers app's sections of a person's GDPR export.
        from offers import imports
        from offers.services import exports  # noqa: F401

        # Products as a kind of the customers app's CSV import (it does not import offers).
        imports.register()
