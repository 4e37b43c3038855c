from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Residents' portal")

    def ready(self):
        from core.signals import minute_sweep

        from .services import suggestions_purge_contacts

        def purge(sender, **kwargs):
            suggestions_purge_contacts()

        minute_sweep.connect(purge, dispatch_uid="portal.suggestions_purge_contacts", weak=False)
