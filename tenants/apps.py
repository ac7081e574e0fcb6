from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants and access")

    def ready(self) -> None:
        # Each app declares its job kinds in its own jobs.py (see tenants/jobs.py).
        autodiscover_modules("jobs")
